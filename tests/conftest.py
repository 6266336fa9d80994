"""Shared test fixtures: a tiny real model and a tiny converted dataset, built locally per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import BFCL_CACHE, LLAMA_CPP_CACHE, WHEEL_CACHE, tool_conversation

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


#: fixtures that download a pinned package on first use: the tests that use them get the `network` marker
NETWORK_FIXTURES = {"bfcl_tools", "tiny_smollm2", "scripted_agent_smollm2", "to_gguf", "evaluated"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """models/base built by the real base_model stage with source=tiny (ChatML template)."""
    from agentune import base_model

    out = tmp_path_factory.mktemp("tiny") / "base"
    base_model.run(base_model.Config(source="tiny", out=out))
    return out


@pytest.fixture(scope="session")
def tiny_base_llama3(tmp_path_factory) -> Path:
    """The tiny model with the Llama-3 template and special tokens."""
    from agentune import base_model

    out = tmp_path_factory.mktemp("tiny_llama3") / "base"
    base_model.run(base_model.Config(source="tiny", out=out, tiny={"template": "llama3"}))
    return out


@pytest.fixture(scope="session")
def tiny_converted(tmp_path_factory) -> Path:
    """A converted dataset in the layout `convert` writes (save_to_disk, columns id + messages)."""
    from datasets import Dataset

    records = [tool_conversation(i) for i in range(16)]
    rows = [{"id": r["id"], "messages": r["conversation"]} for r in records]
    out = tmp_path_factory.mktemp("converted") / "converted"
    Dataset.from_list(rows).save_to_disk(str(out))
    return out


@pytest.fixture(scope="session")
def scripted_agent(tmp_path_factory) -> Path:
    """The tiny model taught to call the calculator and then answer (tests/helpers/scripted_agent.py)."""
    from helpers.scripted_agent import build_scripted_agent

    return build_scripted_agent(tmp_path_factory.mktemp("scripted") / "agent")


@pytest.fixture(scope="session")
def bfcl_tools() -> list[dict]:
    """Every tool of six BFCL categories (JSON schema, as evaluate reads them from the pinned wheel)."""
    from agentune.evalsets import bfcl

    wheel = bfcl.fetch_wheel(BFCL_CACHE)
    tools = []
    for category in (
        "simple_python",
        "irrelevance",
        "multiple",
        "parallel",
        "simple_java",
        "simple_javascript",
    ):
        for q in bfcl.load_category(wheel, category, 10**6):
            tools += q["tools"]
    return tools


@pytest.fixture(scope="session")
def tiny_smollm2(tmp_path_factory) -> Path:
    """The tiny model with SmolLM2's tokenizer (base_model tiny.tokenizer smollm2): convertible to GGUF."""
    from agentune import base_model

    out = tmp_path_factory.mktemp("tiny_smollm2") / "base"
    base_model.run(base_model.Config(source="tiny", out=out, tiny={"tokenizer": "smollm2"},
                                     smollm2={"cache_dir": WHEEL_CACHE}))  # fmt: skip
    return out


@pytest.fixture(scope="session")
def scripted_agent_smollm2(tmp_path_factory) -> Path:
    """The scripted agent on SmolLM2's tokenizer (so that it converts to GGUF)."""
    from helpers.scripted_agent import build_scripted_agent

    return build_scripted_agent(tmp_path_factory.mktemp("scripted_smollm2") / "agent", tokenizer="smollm2",
                                wheel_cache=WHEEL_CACHE)  # fmt: skip


@pytest.fixture(scope="session")
def to_gguf(tmp_path_factory):
    """`to_gguf(model_dir, **gguf_params)`: the model laid out as export writes models/merged, then the
    real gguf stage; returns the stage's output folder."""
    from helpers.gguf import convert_to_gguf

    return lambda model, **params: convert_to_gguf(
        model, tmp_path_factory.mktemp("gguf"), LLAMA_CPP_CACHE, **params
    )


@pytest.fixture(scope="session")
def tiny_gguf(tiny_smollm2, to_gguf) -> Path:
    """The tiny SmolLM2-tokenizer model as an f16 GGUF (for the server suite on llama.cpp)."""
    return (
        to_gguf(tiny_smollm2, types=["f16"], quantize=[], lora=False, ollama={"gguf": "f16"})
        / "agentune-f16.gguf"
    )


@pytest.fixture(scope="session")
def scripted_agent_gguf(scripted_agent_smollm2, to_gguf) -> Path:
    """The SmolLM2-tokenizer scripted agent as an f16 GGUF."""
    out = to_gguf(scripted_agent_smollm2, types=["f16"], quantize=[], lora=False, ollama={"gguf": "f16"})
    return out / "agentune-f16.gguf"
