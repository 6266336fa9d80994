"""CPU roofline in fp32 and bf16: matmul peak, LoRA training and greedy decoding, in one process.

    .venv/bin/python benchmarks/bf16_roofline.py [--base models/base] [--threads 2] [--force-bf16]

1. Peak: a 576 x 2304 x 1024 matmul (a SmolLM2 MLP projection at a 576-token step) in fp32 and bf16,
   best of several runs, GFLOP/s.
2. Training: LoRA r 16 on every linear layer of the base model (the embedded default's settings), one
   sample conversation of ~450 tokens per step, forward + backward + AdamW; fp32, then bf16 autocast
   with fp32 LoRA weights and optimizer state (what `train.amp: bfloat16` runs). Effective GFLOP/s =
   4 x parameters x tokens/s (forward 2N + activation gradients 2N through the frozen weights).
3. Decoding: the evaluate stage's batched greedy decoder (32 prompts, 48 new tokens), weights in fp32,
   then in bf16 (what `evaluate.local.dtype: auto` picks on a bf16 CPU). Effective GFLOP/s = 2 x
   parameters x (prompt + generated tokens) / s: with ~500-token tool prompts the prefill is most of
   the work.

Every throughput is printed as a share of both peaks. Where the CPU has neither avx512_bf16 nor
amx_bf16, bf16 is emulated (about 1% of the fp32 matmul speed): the bf16 training and decoding rows
are skipped unless `--force-bf16`, and the peak row shows why.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(dtype, reps: int = 10) -> float:
    import torch

    a, b = torch.randn(576, 2304).to(dtype), torch.randn(2304, 1024).to(dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * 576 * 2304 * 1024 / min(times) / 1e9


def load_base(base: Path, dtype):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentune.core.artifacts import base_model_path

    path = base_model_path(base)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), torch_dtype=getattr(torch, dtype))
    return tok, model


def conversation_ids(tok) -> list[int]:
    """One multi-turn tool conversation of the sample, ~450 tokens with the chat template."""
    from agentune.raw_data.sample import generate

    rec = next(r for r in generate("agent_instruct_react.jsonl", 40, 0) if len(r["conversation"]) >= 5)
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in rec["conversation"])
    return tok(text, add_special_tokens=False)["input_ids"][:512]


def train_tokens_per_s(base: Path, bf16: bool, steps: int) -> tuple[float, int]:
    import torch
    from peft import LoraConfig, get_peft_model

    tok, model = load_base(base, "float32")
    n_params = model.num_parameters()
    targets = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        - {"lm_head"}
    )
    model = get_peft_model(
        model,
        LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=targets, task_type="CAUSAL_LM"),
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.tensor([conversation_ids(tok)])
    rates = []
    for step in range(steps + 1):  # step 0 is warm-up
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step:
            rates.append(ids.numel() / (time.perf_counter() - t))
    return statistics.median(rates), n_params


def decode_tokens_per_s(base: Path, dtype: str, n_prompts: int, new_tokens: int) -> tuple[float, float]:
    """(generated tokens/s, effective FLOP per generated token incl. its share of the prefill)."""
    import torch

    from agentune.catalogue import REGISTRY
    from agentune.inference.decoding import greedy_generate
    from agentune.protocol import react

    tok, model = load_base(base, dtype)
    model.eval()
    names = sorted(REGISTRY)
    seqs = []
    for i in range(n_prompts):
        tools = [REGISTRY[names[(i + k) % len(names)]][0] for k in range(2)]
        text = (f"<|im_start|>system\n{react.render_system(tools)}<|im_end|>\n<|im_start|>user\n"
                f"Please use {tools[0]['name']} for case {i}.<|im_end|>\n<|im_start|>assistant\n")  # fmt: skip
        seqs.append(tok(text, add_special_tokens=False)["input_ids"])
    never = [-1]  # no stop token: every row generates `new_tokens`
    with torch.inference_mode():
        greedy_generate(model, seqs[:2], never, tok.pad_token_id or 0, 4, "cpu")  # warm-up
        t = time.perf_counter()
        out = greedy_generate(model, seqs, never, tok.pad_token_id or 0, new_tokens, "cpu")
        seconds = time.perf_counter() - t
    generated = sum(len(o) for o in out)
    processed = generated + sum(len(q) for q in seqs)
    return generated / seconds, 2 * model.num_parameters() * processed / generated


def main() -> None:
    import torch

    from agentune.core.hardware import cpu_bf16, cpu_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, default=REPO / "models/base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=4)
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--force-bf16", action="store_true", help="run the bf16 rows even where bf16 is emulated")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    support = cpu_bf16()
    load = os.getloadavg()
    print(
        f"{cpu_model()}, {args.threads} threads, torch {torch.__version__}, load average {load[0]:.2f} {load[1]:.2f}"
    )
    print(f"native bf16: {support.native} ({support.reason})")

    # emulated bf16 takes seconds per matmul: best of 2 there, of 10 elsewhere
    peak = {
        "fp32": matmul_gflops(torch.float32),
        "bf16": matmul_gflops(torch.bfloat16, 10 if support.native else 2),
    }
    print(f"matmul peak: fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s "
          f"(bf16 / fp32 = {peak['bf16'] / peak['fp32']:.2f}x)")  # fmt: skip
    if not args.base.is_dir():
        print(f"{args.base}: no base model (run `agentune base_model`); training and decoding rows skipped")
        return
    run_bf16 = support.native or args.force_bf16

    def row(what: str, tokens_per_s: float, flops_per_token: float) -> None:
        eff = tokens_per_s * flops_per_token / 1e9
        bf16_share = f", {eff / peak['bf16']:6.1%} of bf16 peak" if support.native else ""
        print(f"{what:34s} {tokens_per_s:8.1f} tokens/s  {eff:6.1f} GFLOP/s  = {eff / peak['fp32']:5.1%} of fp32 peak"
              f"{bf16_share}")  # fmt: skip

    rates = {}
    for name, bf16 in (("train fp32", False), ("train bf16 autocast", True)):
        if bf16 and not run_bf16:
            print(f"{name:34s} skipped: {support.reason} (--force-bf16 runs it)")
            continue
        rates[name], n = train_tokens_per_s(args.base, bf16, args.train_steps)
        row(name, rates[name], 4 * n)
    for name, dtype in (("decode fp32", "float32"), ("decode bf16", "bfloat16")):
        if dtype == "bfloat16" and not run_bf16:
            print(f"{name:34s} skipped: {support.reason} (--force-bf16 runs it)")
            continue
        rates[name], flops = decode_tokens_per_s(args.base, dtype, args.prompts, args.new_tokens)
        row(name, rates[name], flops)
    for kind in ("train", "decode"):
        a, b = (
            rates.get(f"{kind} fp32"),
            rates.get(f"{kind} bf16 autocast" if kind == "train" else f"{kind} bf16"),
        )
        if a and b:
            print(f"{kind}: bf16 / fp32 = {b / a:.2f}x")


if __name__ == "__main__":
    main()
