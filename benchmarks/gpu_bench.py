"""The real profile's training step and the server's batched decoding on one CUDA GPU, random weights.

    python benchmarks/gpu_bench.py                 # Llama-3-8B shape, on a CUDA device
    .venv/bin/python benchmarks/gpu_bench.py --tiny  # the same code on a 2-layer model (CPU dry run)

One Llama-3-8B-shaped model (random bf16 weights; no download) serves every part, in this order:

1. **decode**: `agentune.inference.decoding.greedy_generate` (what `evaluate` and `agentune serve` run)
   against transformers' `model.generate` on the same prompts (a 512-token shared tool prompt + a 64-token
   question per row), greedy, 128 new tokens per row, batch 1 to 64: generated tokens/s, the ratio to
   `generate` at the same batch, and the ratio to batch 1.
2. **train, LoRA bf16**: the write-up's variant (no quantization; bf16 autocast), r 64 / alpha 16 / dropout 0.1 on every
   linear layer, activation checkpointing, one packed 4096-token sequence per step, AdamW.
3. **train, QLoRA**: the real profile (`params/llama3-8b-agentflan.yaml`): the same weights quantized in
   place to bitsandbytes nf4 with double quantization and fp16 compute, fp16 autocast with a dynamic
   loss scale (xtuner's AmpOptimWrapper), the same LoRA and sequence.

MFU = tokens/s x (4N + 6 x layers x seq x hidden) / peak, N = 8.03e9 (forward 2N, backward of the LoRA
path only needs the activations' gradients: 2N; attention's QK^T and AV add the second term); peak is the
dense bf16/fp16 figure of the card (`--peak-tflops`, 989 for an H100/H200 SXM). Activation recomputation
is not counted (the usual MFU convention).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

LLAMA3_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rope_theta=500000.0,
)
TINY = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=8192,
    rope_theta=500000.0,
)
LORA = dict(
    r=64,
    lora_alpha=16,
    lora_dropout=0.1,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def peak_gib(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def bench_decode(model, vocab: int, device: str, batches: list[int], new_tokens: int) -> None:
    """Generated tokens/s of agentune's decoder and of `generate`, same prompts, same batch."""
    import torch

    from agentune.inference.decoding import greedy_generate

    g = torch.Generator().manual_seed(0)
    shared = torch.randint(3, vocab, (512,), generator=g).tolist()
    rows = [shared + torch.randint(3, vocab, (64,), generator=g).tolist() for _ in range(max(batches))]
    one = None
    print(f"decode: 576-token prompts (512 shared), {new_tokens} new tokens per row, greedy, bf16")
    for b in batches:
        seqs = rows[:b]
        greedy_generate(model, seqs, [], 0, 4, device)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = greedy_generate(model, seqs, [], 0, new_tokens, device)
        sync(device)
        ours = sum(map(len, out)) / (time.perf_counter() - t0)
        ids = torch.tensor(seqs, device=device)
        with torch.inference_mode():
            model.generate(input_ids=ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
            sync(device)
            t0 = time.perf_counter()
            hf = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )
            sync(device)
        theirs = (hf.shape[1] - ids.shape[1]) * b / (time.perf_counter() - t0)
        one = one or ours
        print(
            f"  batch {b:3d}: agentune {ours:8,.0f} tok/s, generate() {theirs:8,.0f} tok/s, "
            f"ratio {ours / theirs:.2f}; vs agentune batch 1: {ours / one:.1f}x"
        )


def quantize_nf4_(model, compute_dtype) -> None:
    """Replace every linear layer but lm_head by a bitsandbytes nf4 layer (double quantization) in place,
    as transformers' `BitsAndBytesConfig(load_in_4bit=True, ...)` loading does."""
    import bitsandbytes as bnb
    import torch

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and name != "lm_head":
                q = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=child.bias is not None,
                    compute_dtype=compute_dtype,
                    compress_statistics=True,
                    quant_type="nf4",
                    device="meta",
                )
                weight = child.weight.data
                q.weight = bnb.nn.Params4bit(
                    weight, requires_grad=False, compress_statistics=True, quant_type="nf4"
                ).to(weight.device)
                setattr(module, name, q)
                del child, weight


def flops_per_token(cfg, n_params: float, seq: int) -> float:
    """LoRA training FLOPs per token: 4N (forward 2N, the activations' backward 2N) + attention."""
    return 4 * n_params + 6 * cfg.num_hidden_layers * seq * cfg.hidden_size


def bench_train(model, cfg, device: str, seq: int, iters: int, amp, peak_tflops: float, label: str):
    """LoRA on `model` (frozen base), one `seq`-token sequence per step; prints tokens/s and MFU.
    Returns the PEFT model (unload() gives the base back) and the figures."""
    import torch
    from peft import LoraConfig, get_peft_model

    reset_peak(device)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    peft_model = get_peft_model(model, LoraConfig(**LORA))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), weight_decay=0.0)
    scaler = torch.amp.GradScaler(device, enabled=amp is torch.float16)
    ids = torch.randint(0, cfg.vocab_size, (1, seq), device=device)
    times = []
    for _ in range(iters):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=amp, enabled=amp is not None):
            loss = peft_model(input_ids=ids, labels=ids).loss
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - t0)
    timed = times[2:] or times
    step = sum(timed) / len(timed)
    tps = seq / step
    n = 8.03e9 if cfg.hidden_size == 4096 else sum(p.numel() for p in model.parameters())
    figures = {
        "s_per_step": round(step, 4),
        "tokens_per_s": round(tps, 1),
        "mfu": round(tps * flops_per_token(cfg, n, seq) / (peak_tflops * 1e12), 4),
        "peak_gpu_gib": round(peak_gib(device), 2) if device == "cuda" else None,
        "trainable_m": round(sum(p.numel() for p in params) / 1e6, 1),
    }
    print(
        f"train {label}: seq {seq}, {step:.2f} s/step, {tps:,.0f} tokens/s/GPU, MFU {figures['mfu']:.1%}, "
        f"peak memory {peak_gib(device):.1f} GiB, loss {loss.item():.2f}, trainable {figures['trainable_m']:.0f} M"
    )
    del opt, params
    return peft_model, figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="2-layer model: a dry run of the same code (CPU ok)")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--iters", type=int, default=6, help="training steps per variant (first 2 not timed)")
    p.add_argument("--batches", default="1,8,32,64")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--skip", default="", help="comma list of parts to skip: decode, lora, qlora")
    args = p.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig

    device = "cuda" if torch.cuda.is_available() else "cpu"
    skip = set(filter(None, args.skip.split(",")))
    cfg = LlamaConfig(**(TINY if args.tiny else LLAMA3_8B))
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"{name}; torch {torch.__version__}, transformers {transformers.__version__}")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    print(
        f"random {'tiny' if args.tiny else 'Llama-3-8B-shaped'} model built in {time.perf_counter() - t0:.0f} s"
    )
    if "decode" not in skip:
        bench_decode(
            model, cfg.vocab_size, device, [int(b) for b in args.batches.split(",")], args.new_tokens
        )
    model.train()
    if "lora" not in skip:
        model = bench_train(
            model, cfg, device, args.seq, args.iters, torch.bfloat16, args.peak_tflops, "LoRA bf16 + bf16 AMP"
        )[0].unload()
    if "qlora" not in skip:
        # The real profile loads in fp16 (train.torch_dtype); CPU autocast has no fp16, so a dry run keeps bf16.
        half = torch.float16 if device == "cuda" else torch.bfloat16
        quantize_nf4_(model.to(half), half)
        reset_peak(device)
        bench_train(
            model, cfg, device, args.seq, args.iters, half, args.peak_tflops,
            f"QLoRA nf4 (real profile: double quant, {half} compute + AMP)",
        )  # fmt: skip


if __name__ == "__main__":
    main()
