"""Lean merge vs `xtuner convert merge`: wall time, peak RSS and weight differences on the same adapter.

    .venv/bin/python benchmarks/merge_bench.py            # embedded default (models/base) + ~1B Llama
    .venv/bin/python benchmarks/merge_bench.py --only 1b  # just the ~1B random-weight Llama

Cases: the embedded default base in models/base (SmolLM2-135M-Instruct, bf16) with a random LoRA (r 16,
all linear layers), and a ~1B-parameter Llama-shaped model with random bf16 weights (hidden 2048,
16 layers, vocab 32000, two ~1 GB shards) created here with a random LoRA (r 64, all linear layers).
Each merge runs in its own child process; peak RSS is that child's maximum resident set size as
`/usr/bin/time -v` reports it; wall time includes interpreter start and imports for both sides. xtuner's merge always loads the base in fp16 and
writes fp16, so agentune's merge is also run with dtype float16 for a same-dtype comparison, and its
default bf16 output is compared in units of bf16 rounding (1 ulp = 2^-7 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OURS = """
import sys
from pathlib import Path
from agentune.protocol.templates import get_template
from agentune.export import write_model_files
from agentune.export.merge import merge_weights
base, adapter, out, dtype, template = sys.argv[1:]
out = Path(out); out.mkdir(parents=True)
merge_weights(Path(base), Path(adapter), out, dtype, progress=False)
write_model_files(Path(base), out, get_template(template), dtype, None)
"""


def run_child(cmd: list[str]) -> tuple[float, float]:
    """Run a child under /usr/bin/time -v; return (wall seconds, peak RSS GiB) of that child alone.

    (getrusage/wait4 would not do: Linux carries the forking parent's peak RSS over fork + exec into
    the child's ru_maxrss, so every child would report at least this script's own size.)
    """
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "PYTHONWARNINGS": "ignore",
        "TOKENIZERS_PARALLELISM": "false",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wall = time.perf_counter() - t0
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{err[-3000:]}")
    kib = next(int(line.split(":")[1]) for line in err.splitlines() if "Maximum resident set size" in line)
    return wall, kib / 2**20


def warm_cache(model_dir: Path) -> None:
    for p in model_dir.glob("*.safetensors"):
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def make_llama_1b(out: Path) -> None:
    """Random bf16 Llama (hidden 2048, 16 layers, 5504 MLP, vocab 32000), 2 shards, written lean."""
    import torch
    from transformers import LlamaConfig

    from agentune.base_model.tiny import build_tokenizer
    from agentune.export.merge import INDEX, write_streaming

    h, inter, layers, vocab = 2048, 5504, 16, 32000
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=h, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=False, torch_dtype="bfloat16",
    )  # fmt: skip
    out.mkdir(parents=True)
    cfg.save_pretrained(str(out))
    build_tokenizer("chatml").save_pretrained(str(out))

    def layer(i: int) -> list[tuple[str, tuple[int, ...]]]:
        p = f"model.layers.{i}."
        return [
            (p + "input_layernorm.weight", (h,)),
            (p + "post_attention_layernorm.weight", (h,)),
            *[(p + f"self_attn.{m}.weight", (h, h)) for m in ("q_proj", "k_proj", "v_proj", "o_proj")],
            (p + "mlp.gate_proj.weight", (inter, h)),
            (p + "mlp.up_proj.weight", (inter, h)),
            (p + "mlp.down_proj.weight", (h, inter)),
        ]

    shards = [
        [("model.embed_tokens.weight", (vocab, h))] + [t for i in range(layers // 2) for t in layer(i)],
        [t for i in range(layers // 2, layers) for t in layer(i)]
        + [("model.norm.weight", (h,)), ("lm_head.weight", (vocab, h))],
    ]
    gen = torch.Generator().manual_seed(0)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards, 1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        specs = [(n, "BF16", s) for n, s in shard]
        shapes = dict(shard)

        def produce(n: str, shapes=shapes) -> torch.Tensor:
            if "norm" in n:
                return torch.ones(shapes[n], dtype=torch.bfloat16)
            return (torch.randn(shapes[n], generator=gen) * 0.02).to(torch.bfloat16)

        write_streaming(out / name, specs, produce)
        weight_map.update(dict.fromkeys(shapes, name))
        total += sum(2 * s[0] * (s[1] if len(s) > 1 else 1) for s in shapes.values())
    (out / INDEX).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


def make_adapter(base: Path, out: Path, r: int, alpha: int) -> int:
    """Random LoRA (A and B non-zero, fp32) over every linear layer except lm_head; return #params."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    from agentune.export.merge import base_shards, read_header

    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    gen = torch.Generator().manual_seed(1)
    state = {}
    for shard in base_shards(base)[0]:
        for name, info in read_header(shard)[0].items():
            module = name.removesuffix(".weight")
            if module.rsplit(".", 1)[-1] in targets:
                n_out, n_in = info.shape
                state[f"base_model.model.{module}.lora_A.weight"] = (
                    torch.randn(r, n_in, generator=gen) / n_in**0.5
                )
                state[f"base_model.model.{module}.lora_B.weight"] = (
                    torch.randn(n_out, r, generator=gen) * 0.02
                )
    out.mkdir(parents=True)
    LoraConfig(
        r=r, lora_alpha=alpha, target_modules=list(targets), task_type="CAUSAL_LM", inference_mode=True,
        base_model_name_or_path=str(base),
    ).save_pretrained(str(out))  # fmt: skip
    save_file(state, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    return sum(t.numel() for t in state.values())


def compare(ours: Path, theirs: Path) -> dict:
    """Max |ours - theirs| over all weights, and the same in units of ours' dtype rounding (ulp)."""
    import torch

    from agentune.export.merge import base_shards, read_header, read_tensor

    where = {}
    for shard in base_shards(theirs)[0]:
        for name, info in read_header(shard)[0].items():
            where[name] = (shard, info)
    max_abs, max_ulps, n, names = 0.0, 0.0, 0, set()
    handles = {}
    for shard in base_shards(ours)[0]:
        table, _ = read_header(shard)
        with open(shard, "rb") as fh:
            for name, info in table.items():
                names.add(name)
                path, tinfo = where[name]
                other = handles.setdefault(path, open(path, "rb"))  # noqa: SIM115
                a = read_tensor(fh, info)
                b = read_tensor(other, tinfo).to(torch.float32)
                diff = (a.to(torch.float32) - b).abs()
                max_abs = max(max_abs, float(diff.max()))
                # one ulp of ours' dtype at the larger magnitude (2^-7 relative for bf16, 2^-10 for fp16),
                # floored at fp16's smallest normal number (below it fp16 itself has no relative precision)
                eps = torch.finfo(a.dtype).eps
                ulp = torch.clamp(torch.maximum(a.abs().to(torch.float32), b.abs()), min=2.0**-14) * eps
                max_ulps = max(max_ulps, float((diff / ulp).max()))
                n += a.numel()
    for h in handles.values():
        h.close()
    missing = sorted(set(where) - names)
    return {"max_abs_diff": max_abs, "max_diff_ulps": max_ulps, "params": n, "missing_keys": missing}


IMPORTS_ONLY = "import torch, transformers, peft, safetensors, agentune.export.merge, agentune.export"


def bench(name: str, base: Path, adapter: Path, template: str, work: Path) -> dict:
    py = sys.executable
    warm_cache(base)
    res: dict = {"case": name}
    # what the interpreter + torch/transformers imports alone hold (the same in both children)
    res["imports_only"] = run_child([py, "-c", IMPORTS_ONLY])
    out_bf16, out_xt, out_fp16 = (
        work / f"{name}-ours-bf16",
        work / f"{name}-xtuner",
        work / f"{name}-ours-fp16",
    )
    res["ours_bf16"] = run_child(
        [py, "-c", OURS, str(base), str(adapter), str(out_bf16), "bfloat16", template]
    )
    xt = [
        py,
        "-m",
        "agentune.train.xtuner_run",
        "xtuner.tools.model_converters.merge",
        str(base),
        str(adapter),
        str(out_xt),
    ]
    res["xtuner_fp16"] = run_child([*xt, "--safe-serialization", "--device", "cpu"])
    res["ours_fp16"] = run_child(
        [py, "-c", OURS, str(base), str(adapter), str(out_fp16), "float16", template]
    )
    res["diff_fp16_vs_xtuner"] = compare(out_fp16, out_xt)
    res["diff_bf16_vs_xtuner"] = compare(out_bf16, out_xt)
    for d in (out_bf16, out_xt, out_fp16):
        shutil.rmtree(d, ignore_errors=True)
    return res


def report(res: dict) -> None:
    (tb, rb), (tx, rx), (tf, rf) = res["ours_bf16"], res["xtuner_fp16"], res["ours_fp16"]
    d16, dbf = res["diff_fp16_vs_xtuner"], res["diff_bf16_vs_xtuner"]
    print(
        f"\n== {res['case']} ({d16['params'] / 1e9:.3f} B params, adapter {res['adapter_params'] / 1e6:.1f} M)"
    )
    print(f"{'merge':<28}{'wall_s':>10}{'peak_rss_gib':>14}")
    print(f"{'(imports only)':<28}{res['imports_only'][0]:>10.1f}{res['imports_only'][1]:>14.2f}")
    print(f"{'xtuner convert merge (fp16)':<28}{tx:>10.1f}{rx:>14.2f}")
    print(f"{'agentune merge (bf16)':<28}{tb:>10.1f}{rb:>14.2f}")
    print(f"{'agentune merge (fp16)':<28}{tf:>10.1f}{rf:>14.2f}")
    print(
        f"ratios vs xtuner: bf16 wall {tb / tx:.2f}x, peak RSS {rb / rx:.2f}x; fp16 wall {tf / tx:.2f}x, peak RSS {rf / rx:.2f}x"
    )
    print(
        f"fp16 vs xtuner fp16: max abs diff {d16['max_abs_diff']:.3g} ({d16['max_diff_ulps']:.2f} fp16 ulp)"
    )
    print(
        f"bf16 vs xtuner fp16: max abs diff {dbf['max_abs_diff']:.3g} ({dbf['max_diff_ulps']:.2f} bf16 ulp)"
    )
    if d16["missing_keys"] or dbf["missing_keys"]:
        print(f"keys only in xtuner's output: {d16['missing_keys'][:5]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("default", "1b"), help="run one case")
    parser.add_argument("--workdir", type=Path, help="scratch dir (default: a temp dir, removed)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="merge_bench-", dir=args.workdir))
    results = []
    try:
        default_base = ROOT / "models" / "base"
        if args.only in (None, "default"):
            if (default_base / "model.safetensors").is_file() or (
                default_base / "model.safetensors.index.json"
            ).is_file():
                template = json.loads((default_base / "agentune_base.json").read_text())["template"]
                adapter = work / "default-adapter"
                n = make_adapter(default_base, adapter, r=16, alpha=32)
                res = bench("embedded-default", default_base, adapter, template, work)
                res["adapter_params"] = n
                report(res)
                results.append(res)
            else:
                print(
                    f"skipping the embedded default: no weights in {default_base} (run `agentune base_model`)"
                )
        if args.only in (None, "1b"):
            base = work / "llama-1b"
            make_llama_1b(base)
            adapter = work / "llama-1b-adapter"
            n = make_adapter(base, adapter, r=64, alpha=16)
            res = bench("llama-1b-random", base, adapter, "chatml", work)
            res["adapter_params"] = n
            report(res)
            results.append(res)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
