"""Training throughput: xtuner (what `agentune train` runs) against plain PEFT LoRA in this process.

    .venv/bin/python benchmarks/train_bench.py [--iters 6] [--max-length 512] [--base models/base]

CPU (always): the embedded default. Runs `agentune train` for `--iters` iterations on the real
params (SmolLM2-135M from models/base, data/converted) into a temp dir and reads tokens/s per step
from metrics and the trainer's peak RSS; then, as the baseline measured here, a plain PEFT LoRA
forward/backward/AdamW loop on the same model, LoRA settings and sequence length. Prints both and the
ratio xtuner / plain (1.0 = no overhead). The first step of each is warm-up and not counted.
The plain loop runs twice with the loss on the last `--label-share` of each sequence (the assistant
turns; the rest is prompt): transformers' causal-LM loss (logits at every position) and
`agentune.train.sft.label_positions_loss` (logits where a label is, what `agentune train` uses), and
prints their ratio.

GPU: `benchmarks/gpu_bench.py` (the real profile's QLoRA step on a Llama-3-8B-shaped model).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def rss_gib(kib: int) -> float:
    return kib / 1024**2


def bench_xtuner(args: argparse.Namespace, tmp: Path) -> dict:
    """`agentune train` for a few iterations on the embedded default (real stage, real xtuner)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    t = params["train"]
    t.update(
        base_model=str(REPO / args.base),
        dataset=str(REPO / args.dataset),
        out=str(tmp / "checkpoints"),
        loss_curve=str(tmp / "train_loss.tsv"),
        max_iters=args.iters,
        max_epochs=None,
        max_length=args.max_length,
        save_steps=args.iters,
        warmup_ratio=0.0,
    )
    pfile = tmp / "params.yaml"
    pfile.write_text(yaml.safe_dump({"train": t}))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "agentune.cli", "train", "--params", str(pfile)], check=True, env=env, cwd=tmp
    )
    wall = time.time() - t0
    lines = (tmp / "train_loss.tsv").read_text().splitlines()[1:]
    tps = [float(ln.split("\t")[3]) for ln in lines if ln.split("\t")[3]]
    steady = tps[1:] or tps
    record = json.loads((tmp / "checkpoints" / "agentune_train.json").read_text())
    return {
        "tokens_per_s": sum(steady) / len(steady),
        "stage_wall_s": wall,
        "train_wall_s": record["wall_s"],
        "peak_rss_gib": rss_gib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
    }


def bench_plain(args: argparse.Namespace, label_positions: bool) -> dict:
    """Baseline: plain PEFT LoRA on the same model and sequence length, in this process; the loss
    from transformers (every position's logits) or at the labelled positions only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from agentune.core.artifacts import base_model_path as model_path
    from agentune.train.sft import IGNORE_INDEX, label_positions_loss

    torch.set_num_threads(args.threads)
    params = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    lora = params["lora"]
    model = AutoModelForCausalLM.from_pretrained(model_path(REPO / args.base), torch_dtype=torch.float32)
    targets = lora["target_modules"] or sorted(
        {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)} - {"lm_head"}
    )
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=targets
        ),
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (1, args.max_length), generator=gen)
    labels = ids.clone()
    labels[:, : round(args.max_length * (1 - args.label_share))] = IGNORE_INDEX
    data = {"input_ids": ids, "labels": labels}
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        if label_positions:
            loss = label_positions_loss(model.get_base_model(), data)
        else:
            loss = model(**data).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    steady = times[1:] or times
    return {
        "tokens_per_s": args.max_length / (sum(steady) / len(steady)),
        "peak_rss_gib": rss_gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--label-share", type=float, default=0.25, help="share of positions with a loss (plain loop)"
    )
    p.add_argument("--base", default="models/base")
    p.add_argument("--dataset", default="data/converted")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as d:
        xt = bench_xtuner(args, Path(d))
    plain = bench_plain(args, label_positions=False)
    ours = bench_plain(args, label_positions=True)
    print(
        f"embedded default, CPU, {args.threads} threads, {args.max_length} tokens/step, {args.iters} steps:"
    )
    print(
        f"  xtuner (agentune train): {xt['tokens_per_s']:.0f} tokens/s, trainer peak RSS "
        f"{xt['peak_rss_gib']:.2f} GiB, stage wall {xt['stage_wall_s']:.0f} s"
    )
    print(
        f"  plain PEFT LoRA (baseline, same process): {plain['tokens_per_s']:.0f} tokens/s, "
        f"peak RSS {plain['peak_rss_gib']:.2f} GiB"
    )
    print(f"  ratio xtuner / plain tokens/s: {xt['tokens_per_s'] / plain['tokens_per_s']:.2f}")
    print(
        f"  plain, logits at the {args.label_share:.0%} labelled positions only: {ours['tokens_per_s']:.0f} "
        f"tokens/s, ratio to every position's logits: {ours['tokens_per_s'] / plain['tokens_per_s']:.2f}"
    )


if __name__ == "__main__":
    main()
