"""agentune.inference.decoding: batched greedy decoding with a shared prefix equals one-at-a-time `generate()`."""

from __future__ import annotations

import pytest

from agentune.inference.decoding import common_prefix_len, greedy_generate


def test_common_prefix_len():
    assert common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_len([[5, 1], [6, 1]]) == 0
    assert common_prefix_len([[1, 2, 3]]) == 3


@pytest.fixture(scope="module")
def model_and_prompts(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentune.core.artifacts import base_model_path as model_path

    path = model_path(tiny_base)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), torch_dtype=torch.float32).eval()
    head = "<|im_start|>system\nYou are an assistant that can use external tools. Reply in the format.\n"
    questions = ["What is 2+2?", "Weather in Paris, please, tomorrow at noon?", "Hi", "Sort 5, 3, 9, 1, 7."]
    prompts = [tok.encode(head + q + "<|im_end|>\n<|im_start|>assistant\n") for q in questions]
    return model, prompts


def reference(model, prompt, max_new_tokens, stop_ids):
    """transformers' own greedy generate(), one prompt at a time (no padding)."""
    import torch

    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stop_ids,
            pad_token_id=0,
        )
    return out[0, len(prompt) :].tolist()


def test_batched_shared_prefix_matches_one_at_a_time(model_and_prompts):
    import torch

    model, prompts = model_and_prompts
    assert common_prefix_len(prompts) >= 50  # the shared-prefix path is taken
    free = [reference(model, p, 12, [10**6]) for p in prompts]

    def cut(stop):
        return [f[: f.index(stop) + 1] if stop in f else f for f in free]

    # A stop token some rows emit and others don't (or later): rows finish at different steps.
    stop = next(t for f in free for t in f if len({len(e) for e in cut(t)}) > 1)
    expected = cut(stop)
    with torch.inference_mode():
        got = greedy_generate(model, prompts, [stop], pad_id=0, max_new_tokens=12)
    assert got == expected
    assert got == [reference(model, p, 12, [stop]) for p in prompts]


def test_without_shared_prefix_and_single_row(model_and_prompts):
    import torch

    model, prompts = model_and_prompts
    varied = [p[60:] for p in prompts]  # different lengths, no common prefix: plain left padding
    with torch.inference_mode():
        got = greedy_generate(model, varied, [10**6], pad_id=0, max_new_tokens=6)
        one = greedy_generate(model, varied[:1], [10**6], pad_id=0, max_new_tokens=6)
    assert got == [reference(model, p, 6, [10**6]) for p in varied]
    assert one == got[:1]
    assert greedy_generate(model, [], [1], 0, 5) == []
