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


def test_a_kept_prefix_is_reused_and_changes_nothing(model_and_prompts):
    """`decode(keep=PrefixCache())`: a later call starts from the kept keys and values (the shared tool
    prompt, the previous turn's prompt) and computes what a fresh forward pass computes: the same
    next-token logits (to float tolerance) and the same greedy tokens."""
    import torch

    from agentune.inference.decoding import PrefixCache, decode

    model, prompts = model_and_prompts
    keep = PrefixCache()

    def run(seqs: list[list[int]]) -> list[list[int]]:
        out = [[] for _ in seqs]

        def pick(rows, logits):
            if not out[rows[0]]:  # the first step: compare with a full forward of each prompt
                for r, row_logits in zip(rows, logits, strict=True):
                    full = model(input_ids=torch.tensor([seqs[r]])).logits[0, -1]
                    assert torch.allclose(row_logits, full, atol=1e-4), (r, (row_logits - full).abs().max())
            toks = logits.argmax(dim=-1).tolist()
            for r, t in zip(rows, toks, strict=True):
                out[r].append(t)
            return toks, [len(out[r]) >= 8 for r in rows]

        with torch.inference_mode():
            decode(model, seqs, pick, pad_id=0, max_new_tokens=8, keep=keep)
        return out

    first = run(prompts[:1])
    assert keep.reused == 0 and first == [reference(model, prompts[0], 8, [10**6])]
    assert run(prompts[:1]) == first and keep.reused == len(prompts[0]) - 1  # the same prompt again
    longer = prompts[0] + first[0] + prompts[1][-20:]  # the next turn extends the previous prompt
    assert run([longer]) == [reference(model, longer, 8, [10**6])] and keep.reused == len(prompts[0]) - 1
    batch = run(prompts[1:])  # a batch: its shared prefix starts from the kept one
    assert keep.reused == common_prefix_len(prompts)
    assert batch == [reference(model, p, 8, [10**6]) for p in prompts[1:]]
