"""Batched vs one-at-a-time generation on the same 64 prompts, in one process: prompts/s and the ratios.

    .venv/bin/python benchmarks/eval_bench.py [--model models/base] [--prompts 64] [--batch-size 32]

Uses models/base (SmolLM2-135M in the embedded default) when it exists, else builds the tiny model.
Prompts are tool prompts of the evaluate stage (protocol system prompt + question), greedy decoding,
the same max_new_tokens everywhere. Three modes on the same prompts:

- `batched`: what `evaluate` runs (`agentune.inference.decoding`: shared-prefix prefill, finished rows leave,
  in-place KV cache, SDPA `enable_gqa`);
- `one at a time`: the same decoder with batch size 1;
- `generate() one at a time`: transformers' `model.generate`, one prompt per call (no padding).

Target: batched >= 3x one at a time on CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def prompts(n: int) -> list[tuple[list[dict], list[dict]]]:
    """`n` tool prompts: the scenario tools with varied questions."""
    from agentune.catalogue import REGISTRY
    from agentune.protocol import react

    names = sorted(REGISTRY)
    out = []
    for i in range(n):
        tools = [REGISTRY[names[(i + k) % len(names)]][0] for k in range(2)]
        question = f"Please use {tools[0]['name']} for case number {i}: value {3 * i + 1}."
        msgs = [
            {"role": "system", "content": react.render_system(tools)},
            {"role": "user", "content": question},
        ]
        out.append((msgs, tools))
    return out


def main() -> None:
    from agentune import base_model
    from agentune.core.artifacts import BaseModelRecord
    from agentune.inference.generation import LocalBackend
    from agentune.protocol.templates import get_template

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/base")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--skip-hf", action="store_true", help="skip the transformers generate() baseline")
    args = p.parse_args()

    model_dir = Path(args.model)
    if not BaseModelRecord.exists(model_dir):
        model_dir = Path(tempfile.mkdtemp()) / "tiny"
        base_model.run(base_model.Config(source="tiny", out=model_dir))
    info = BaseModelRecord.read(model_dir)
    backend = LocalBackend(info.model_path(model_dir), get_template(info.template), args.batch_size,
                           args.max_new_tokens)  # fmt: skip
    work = prompts(args.prompts)
    backend.generate(work[:2])  # warm-up

    backend.batch_size = args.batch_size
    t0 = time.perf_counter()
    batched = backend.generate(work)
    t_batched = time.perf_counter() - t0

    backend.batch_size = 1
    t0 = time.perf_counter()
    single = backend.generate(work)
    t_single = time.perf_counter() - t0

    t_hf = None
    if not args.skip_hf:
        t0 = time.perf_counter()
        hf = [hf_generate(backend, messages) for messages, _ in work]
        t_hf = time.perf_counter() - t0

    same = sum(a.text == b.text for a, b in zip(batched, single, strict=True))
    tok_b = sum(g.n_tokens for g in batched)
    print(f"model: {model_dir} ({info.get('source')}), {len(work)} prompts, max_new_tokens {args.max_new_tokens}, "
          f"torch threads {__import__('torch').get_num_threads()}")  # fmt: skip
    lengths = sorted(len(backend.encode(m)) for m, _ in work)
    print(f"prompt tokens: min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}; "
          f"generated tokens: mean {tok_b / len(work):.1f}")  # fmt: skip
    print(f"batched (batch {args.batch_size}): {t_batched:.1f} s, {len(work) / t_batched:.2f} prompts/s, "
          f"{tok_b / t_batched:.1f} generated tokens/s")  # fmt: skip
    print(f"one at a time:       {t_single:.1f} s, {len(work) / t_single:.2f} prompts/s")
    print(f"speedup batched / one-at-a-time: {t_single / t_batched:.2f}x (target >= 3x on CPU)")
    print(
        f"identical replies batched vs one at a time: {same}/{len(work)} (greedy; fp32 padding can flip near-ties)"
    )
    if t_hf is not None:
        same_hf = sum(a.text == b for a, b in zip(single, hf, strict=True))
        print(f"generate() one at a time: {t_hf:.1f} s, {len(work) / t_hf:.2f} prompts/s; "
              f"batched / generate() one at a time: {t_hf / t_batched:.2f}x; "
              f"identical replies one at a time vs generate(): {same_hf}/{len(work)}")  # fmt: skip


def hf_generate(backend, messages: list[dict]) -> str:
    """One prompt through transformers' own `model.generate` (greedy, stop tokens), decoded as evaluate does."""
    import torch

    ids = torch.tensor([backend.encode(messages)], device=backend.device)
    with torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=backend.max_new_tokens,
            do_sample=False,
            eos_token_id=backend.stop_ids,
            pad_token_id=backend.pad_id,
        )
    return backend._decode(out[0, ids.shape[1] :].tolist()).text


if __name__ == "__main__":
    main()
