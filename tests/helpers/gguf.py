"""A model laid out as `export` writes models/merged (weights, tokenizer with the agent's chat template,
provenance, optionally an adapter), then converted by the real `gguf` stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentune import gguf
from agentune.core.artifacts import MergedRecord
from agentune.export import write_model_files
from agentune.protocol.templates import get_template


def llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


needs_llama_cpp = pytest.mark.skipif(
    not llama_cpp_installed(), reason="the llama.cpp runtime is an extra: `make llama-cpp` (CI installs it)"
)
#: the server's engines, for tests that run on both
ENGINES = ["local", pytest.param("llama.cpp", marks=[needs_llama_cpp, pytest.mark.network])]


def lay_out_merged(model: Path, root: Path, adapter: bool = False) -> Path:
    """`root/merged` (and `root/adapters/iter_1` with `adapter`) from a model folder."""
    merged = root / "merged"
    merged.mkdir(parents=True)
    for f in model.glob("*.safetensors"):
        shutil.copy(f, merged / f.name)
    stops = write_model_files(model, merged, get_template("chatml"), "float32", None)
    checkpoint = None
    if adapter:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        peft = get_peft_model(
            AutoModelForCausalLM.from_pretrained(str(model)),
            LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
        )
        peft.save_pretrained(str(root / "adapters/iter_1"))
        checkpoint = "iter_1"
    MergedRecord(checkpoint=checkpoint, iteration=1 if adapter else None, template="chatml", tool_result=None,
                 dataset_fingerprint="test-fingerprint", base_weights_sha256="test-base", **stops).write(merged)  # fmt: skip
    return merged


def convert_to_gguf(model: Path, root: Path, cache: Path, adapter: bool = False, **params) -> Path:
    merged = lay_out_merged(model, root, adapter)
    cfg = gguf.Config(merged=merged, adapters=root / "adapters", out=root / "gguf", cache_dir=cache, **params)
    gguf.run(cfg)
    return cfg.out
