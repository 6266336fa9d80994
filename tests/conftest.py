"""Shared test fixtures: a tiny real model and a tiny converted dataset, built locally per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def tool_conversation(i: int) -> dict:
    """One short Agent-FLAN-format record: a calculator call, its result and a final answer."""
    from agentune.protocol import react

    calc = {
        "name": "calculator",
        "description": "Compute a op b.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "number"},
                "b": {"type": "number"},
                "operator": {"type": "string", "enum": ["+", "-", "*", "/"]},
            },
            "required": ["a", "b", "operator"],
        },
    }
    a, b = 3 + i, 4 + 2 * i
    return {
        "id": f"tiny-{i}",
        "conversation": [
            {"role": "system", "content": react.render_system([calc]), "loss": False},
            {"role": "user", "content": f"What is {a} + {b}?", "loss": False},
            {
                "role": "assistant",
                "content": react.format_call("Add them.", "calculator", {"a": a, "b": b, "operator": "+"}),
                "loss": True,
            },
            {"role": "user", "content": react.format_response(a + b), "loss": False},
            {"role": "assistant", "content": react.format_final("Done.", str(a + b)), "loss": True},
        ],
    }


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
    """The tiny model taught to call the calculator and then answer (tests/scripted_agent.py)."""
    from scripted_agent import build_scripted_agent

    return build_scripted_agent(tmp_path_factory.mktemp("scripted") / "agent")


@pytest.fixture(scope="session")
def bfcl_tools() -> list[dict]:
    """Every tool of six BFCL categories (JSON schema, as evaluate reads them from the pinned wheel)."""
    from agentune.evalsets import bfcl
    from agentune.evaluate.config import BfclConfig

    cfg = BfclConfig()
    wheel = bfcl.fetch_wheel(Path(__file__).resolve().parents[1] / cfg.cache_dir)
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
