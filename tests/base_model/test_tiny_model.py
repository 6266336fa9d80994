"""The tiny base model: loads, renders its chat template, stops on the template's end-of-turn token."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("fixture,eos", [("tiny_base", "<|im_end|>"), ("tiny_base_llama3", "<|eot_id|>")])
def test_tiny_model_loads_and_renders_template(request, fixture, eos):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = request.getfixturevalue(fixture)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tok.eos_token == eos
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "hi" in text and text.count(eos) == 1
    ids = tok("Thought: añadir 2+2", return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == "Thought: añadir 2+2"  # byte-level: lossless round trip
    assert model.num_parameters() < 200_000
    assert tok.convert_tokens_to_ids(eos) in model.generation_config.eos_token_id
    prov = json.loads((path / "agentune_base.json").read_text())
    assert prov["source"] == "tiny" and prov["template"] in ("chatml", "llama3")
    assert list(path.glob("*.safetensors")) and not list(path.glob("*.bin"))


def test_tiny_model_is_deterministic(tmp_path):
    from agentune.base_model.tiny import build_tiny
    from agentune.core.io import sha256_tree

    a = build_tiny(tmp_path / "a", seed=3)
    b = build_tiny(tmp_path / "b", seed=3)
    assert sha256_tree(a, "*.safetensors") == sha256_tree(b, "*.safetensors")
