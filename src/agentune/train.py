"""Stage train: LoRA/QLoRA fine-tuning with xtuner, from one CPU process to many GPU nodes, resumable.

Renders an xtuner 0.2.0 config from the `train` params (models/checkpoints/xtuner_config.py), runs
`xtuner.tools.train` through agentune's launcher (plain python for one process, torchrun otherwise;
env NNODES / NODE_RANK / NPROC_PER_NODE / ADDR / PORT override the launch params like xtuner's), and
checks the real outcome: exit status, the final checkpoint, the log. Writes iter_N.pth checkpoints
(with optimizer + scheduler state), train.log, agentune_train.json and metrics/train_loss.tsv.
A run interrupted (even by kill -9) resumes from its last checkpoint when rerun with the same params,
base model and data; `--fresh` starts over.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from agentune.config import StrictModel
from agentune.errors import StageError

log = logging.getLogger(__name__)

RECORD = "agentune_train.json"
CONFIG_FILE = "xtuner_config.py"
LOG_FILE = "train.log"
DEEPSPEED = ("none", "zero1", "zero2", "zero2_offload", "zero3", "zero3_offload")


class LoraParams(StrictModel):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    bias: Literal["none", "all", "lora_only"] = "none"
    #: module names to adapt; null = every linear layer except lm_head (what xtuner does)
    target_modules: list[str] | None = None


class QuantParams(StrictModel):
    """4-bit QLoRA via bitsandbytes (CUDA only)."""

    enabled: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    llm_int8_threshold: float = 6.0


class LaunchParams(StrictModel):
    """Processes and nodes; env NPROC_PER_NODE, NNODES, NODE_RANK, ADDR, PORT override these."""

    nproc_per_node: int = Field(1, ge=1)
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(29500, ge=1024, le=65535)
    #: none or one of xtuner's DeepSpeed configs (zero1, zero2, zero2_offload, zero3, zero3_offload)
    #: or a path to a DeepSpeed JSON file
    deepspeed: str = "none"


class EvalParams(StrictModel):
    """xtuner's in-training chat evaluation (EvaluateChatHook); every: 0 turns it off."""

    every: int = Field(0, ge=0)
    system: str = ""  # system prompt; ignored when `tools` is given
    tools: list[dict] = []  # tools (JSON-schema style): system = protocol.render_system(tools)
    inputs: list[str] = []

    def system_prompt(self) -> str:
        """The system prompt the hook sends: the ReAct prompt for `tools`, else `system`."""
        from agentune import protocol

        return protocol.render_system(self.tools) if self.tools else self.system


class Config(StrictModel):
    base_model: Path = Path("models/base")
    dataset: Path = Path("data/converted")
    out: Path = Path("models/checkpoints")
    loss_curve: Path = Path("metrics/train_loss.tsv")

    lora: LoraParams = LoraParams()
    quantization: QuantParams = QuantParams()
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    amp: Literal["none", "float16", "bfloat16"] = "none"  # AmpOptimWrapper dtype (CUDA only)
    activation_checkpointing: bool = False
    trust_remote_code: bool = False

    max_length: int = Field(512, ge=16)
    pack_to_max_length: bool = True
    shuffle_before_pack: bool = True
    map_num_proc: int = Field(1, ge=1)

    batch_size: int = Field(1, ge=1)
    accumulative_counts: int = Field(1, ge=1)
    dataloader_num_workers: int = Field(0, ge=0)
    max_iters: int | None = Field(None, ge=1)  # exactly one of max_iters / max_epochs
    max_epochs: int | float | None = Field(None, gt=0)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    max_norm: float = Field(1.0, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    warmup_start_factor: float = Field(1e-5, gt=0, le=1)

    save_steps: int = Field(50, ge=1)
    keep: int = Field(-1, ge=-1)  # checkpoints kept; -1 = all
    save_optimizer: bool = True  # needed to resume
    log_interval: int = Field(1, ge=1)
    seed: int = 0

    evaluation: EvalParams = EvalParams()
    launch: LaunchParams = LaunchParams()

    @model_validator(mode="after")
    def _check(self) -> Config:
        problems = []
        if (self.max_iters is None) == (self.max_epochs is None):
            problems.append("set exactly one of max_iters / max_epochs (the other to null)")
        if self.keep == 0:
            problems.append("keep must be -1 (all) or >= 1")
        ds = self.launch.deepspeed
        if ds not in DEEPSPEED and not ds.endswith(".json"):
            problems.append(f"launch.deepspeed {ds!r}: use one of {', '.join(DEEPSPEED)} or a .json path")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fresh", action="store_true", help="discard an interrupted run instead of resuming it"
    )


# --------------------------------------------------------------------------------------------------
# inputs


def check_inputs(cfg: Config) -> dict:
    """Validate base model and dataset; return what the run record needs about them."""
    from agentune import base_model
    from agentune.chat_templates import get_template

    info = base_model.read_provenance(cfg.base_model)
    path = base_model.model_path(cfg.base_model)
    if not (path / "config.json").is_file():
        raise StageError(f"{path}: no config.json; the base model is incomplete, rerun `agentune base_model`")
    try:
        template = get_template(info.get("template", ""))
    except ValueError as exc:
        raise StageError(f"{cfg.base_model}/{base_model.PROVENANCE}: {exc}") from None
    n_rows = check_dataset(cfg.dataset)
    return {
        "base_model": {
            "dir": str(cfg.base_model),
            "path": str(path),
            "source": info.get("source"),
            "template": template.name,
            "xtuner_template": template.xtuner,
            "weights_sha256": info.get("weights_sha256"),
        },
        "dataset": {
            "path": str(cfg.dataset),
            "rows": n_rows,
            "fingerprint": dataset_fingerprint(cfg.dataset),
        },
    }


def check_dataset(path: Path) -> int:
    """The converted dataset must load with `datasets.load_from_disk` and have id + messages."""
    if not path.exists():
        raise StageError(f"{path}: converted dataset not found; run `agentune convert` first")
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for a broken folder
        raise StageError(
            f"{path}: cannot be read as a converted dataset ({type(exc).__name__}: {exc}); "
            "rerun `agentune convert`"
        ) from None
    if hasattr(ds, "keys"):  # a DatasetDict
        raise StageError(f"{path}: holds a DatasetDict ({list(ds.keys())}); expected one Dataset")
    missing = {"messages"} - set(ds.column_names)
    if missing:
        raise StageError(f"{path}: missing column(s) {sorted(missing)}; found {ds.column_names}")
    if len(ds) == 0:
        raise StageError(f"{path}: the dataset has no rows")
    return len(ds)


def dataset_fingerprint(path: Path) -> str:
    """The convert stage's recorded fingerprint if present, else a hash of the folder."""
    from agentune.io import combine_hashes, sha256_file

    record = path / "agentune_convert.json"
    if record.is_file():
        return sha256_file(record)
    files = (q for q in path.rglob("*") if q.is_file() and not q.name.startswith("cache-"))
    return combine_hashes({q.relative_to(path).as_posix(): sha256_file(q) for q in files})


def check_device(cfg: Config, cuda: bool) -> None:
    """Reject settings that need a GPU when none is present, naming the params to change."""
    if cuda:
        return
    problems = []
    if cfg.quantization.enabled:
        problems.append("train.quantization.enabled=true (4-bit bitsandbytes needs CUDA): set it to false")
    if cfg.amp != "none":
        problems.append(f"train.amp={cfg.amp} (AmpOptimWrapper needs CUDA): set it to none")
    if cfg.torch_dtype != "float32":
        problems.append(f"train.torch_dtype={cfg.torch_dtype}: CPU training here is float32")
    if cfg.launch.deepspeed != "none":
        problems.append(f"train.launch.deepspeed={cfg.launch.deepspeed}: DeepSpeed needs CUDA; set none")
    if problems:
        raise StageError("no CUDA device, but the params need one:\n  - " + "\n  - ".join(problems))


def bos_override(model_path: Path, template: str) -> tuple[str | None] | None:
    """(template BOS,) when the tokenizer's bos_token differs from the chat template's, else None."""
    from agentune.chat_templates import get_template

    want = get_template(template).bos
    cfg_file = model_path / "tokenizer_config.json"
    have = json.loads(cfg_file.read_text(encoding="utf-8")).get("bos_token") if cfg_file.is_file() else None
    if isinstance(have, dict):  # AddedToken form
        have = have.get("content")
    return None if have == want else (want,)


def resolve_launch(cfg: Config) -> LaunchParams:
    """Launch params with xtuner's environment overrides applied."""
    env = os.environ
    data = cfg.launch.model_dump()
    for key, var in (
        ("nproc_per_node", "NPROC_PER_NODE"),
        ("nnodes", "NNODES"),
        ("node_rank", "NODE_RANK"),
        ("master_addr", "ADDR"),
        ("master_port", "PORT"),
    ):
        if env.get(var):
            data[key] = env[var]
    try:
        return LaunchParams.model_validate(data)
    except Exception as exc:
        raise StageError(f"launch settings from the environment are invalid: {exc}") from None


def fingerprint(cfg: Config, inputs: dict) -> str:
    """What must be equal for an interrupted run to be resumed: training params, base weights, data."""
    params = cfg.model_dump(mode="json", exclude={"out", "loss_curve", "launch", "log_interval"})
    params["deepspeed"] = cfg.launch.deepspeed
    key = {
        "params": params,
        "base_weights": inputs["base_model"]["weights_sha256"],
        "dataset": inputs["dataset"]["fingerprint"],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# command line and process


def xtuner_command(
    config: Path, work_dir: Path, launch: LaunchParams, resume: Path | None
) -> tuple[list[str], bool]:
    """The command that runs xtuner's train tool; second item: whether it runs distributed."""
    args = ["xtuner.tools.train", str(config), "--work-dir", str(work_dir)]
    if launch.deepspeed != "none":
        ds = launch.deepspeed
        args += ["--deepspeed", ds if ds.endswith(".json") else f"deepspeed_{ds}"]
    if resume is not None:
        args += ["--resume", str(resume)]
    if launch.nnodes == 1 and launch.nproc_per_node == 1:
        return [sys.executable, "-m", "agentune.xtuner_run", *args], False
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={launch.nnodes}",
        f"--node_rank={launch.node_rank}",
        f"--nproc_per_node={launch.nproc_per_node}",
        f"--master_addr={launch.master_addr}",
        f"--master_port={launch.master_port}",
    ]
    return [*torchrun, "-m", "agentune.xtuner_run", *args, "--launcher", "pytorch"], True


_ITER = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\]")
_FIELD = re.compile(r"\b(lr|loss|tokens_per_sec|time):\s*([-+0-9.eE]+)")
_TRACE_START = re.compile(r"^Traceback \(most recent call last\)|^\[rank\d+\]: Traceback")


class Progress:
    """Turn mmengine's log lines into a tqdm bar: iteration, loss, tokens/s, ETA."""

    def __init__(self, start_iter: int) -> None:
        self.bar = None
        self.start = start_iter
        self.last_iter = start_iter
        self.total: int | None = None

    def feed(self, line: str) -> None:
        m = _ITER.search(line)
        if not m:
            return
        it, total = int(m.group(1)), int(m.group(2))
        fields = dict(_FIELD.findall(line))
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=self.start, desc="train", unit="it", dynamic_ncols=True)
            self.total = total
        self.bar.update(max(0, it - self.last_iter))
        self.last_iter = it
        post = {}
        if "loss" in fields:
            post["loss"] = f"{float(fields['loss']):.4f}"
        if "lr" in fields:
            post["lr"] = f"{float(fields['lr']):.2e}"
        if "tokens_per_sec" in fields:
            post["tok/s"] = f"{float(fields['tokens_per_sec']):.0f}"
        self.bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _die_with_parent() -> None:
    """In the child: get SIGKILL if agentune dies (even by kill -9), so no training is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_xtuner(cmd: list[str], log_path: Path, start_iter: int, echo: bool) -> tuple[int, list[str]]:
    """Run xtuner, appending raw output to `log_path`; returns (exit status, last output lines)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    tail: deque[str] = deque(maxlen=400)
    progress = Progress(start_iter)
    with open(log_path, "a", encoding="utf-8") as logf:
        logf.write(f"\n===== agentune train {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            preexec_fn=_die_with_parent,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                logf.write(line)
                logf.flush()
                tail.append(line.rstrip("\n"))
                if echo:
                    sys.stderr.write(line)
                progress.feed(line)
            status = proc.wait()
        except BaseException:  # Ctrl-C or an error here: stop the training too
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            proc.wait()
            raise
        finally:
            progress.close()
    return status, list(tail)


def error_excerpt(lines: list[str], n: int = 25) -> str:
    """The last traceback in the output (its last `n` lines), else the last lines of output."""
    start = None
    for i, line in enumerate(lines):
        if _TRACE_START.search(line):
            start = i
    chunk = lines[start:] if start is not None else lines
    return "\n".join(chunk[-n:])


# --------------------------------------------------------------------------------------------------
# checkpoints and metrics


def checkpoints(work_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the iter_N.pth checkpoints in `work_dir`, oldest first."""
    found = []
    for p in work_dir.glob("iter_*.pth"):
        m = re.fullmatch(r"iter_(\d+)\.pth", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def last_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine recorded as complete (`last_checkpoint`), if it still exists."""
    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    path = Path(marker.read_text(encoding="utf-8").strip())
    if not path.is_absolute():
        path = work_dir / path
    return path if path.exists() else None


def read_scalars(work_dir: Path) -> list[dict]:
    """Per-step scalars from every run segment (vis_data/scalars.json), later segments win."""
    by_step: dict[int, dict] = {}
    for f in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by kill -9
            if "loss" in rec and "step" in rec:
                by_step[int(rec["step"])] = rec
    return [by_step[k] for k in sorted(by_step)]


def write_loss_curve(rows: list[dict], path: Path) -> None:
    from agentune.io import atomic_file

    with atomic_file(path) as fh:
        fh.write("step\tloss\tlr\ttokens_per_s\n")
        for r in rows:
            tps = r.get("tokens_per_sec")
            fh.write(
                f"{int(r['step'])}\t{float(r['loss']):.6f}\t{float(r.get('lr', 0.0)):.6g}\t"
                f"{'' if tps is None else f'{float(tps):.1f}'}\n"
            )


# --------------------------------------------------------------------------------------------------
# the stage


def run(cfg: Config, args: argparse.Namespace | None = None) -> None:
    """Train (or resume) and leave models/checkpoints complete, or fail with the real cause."""
    import torch

    from agentune.io import read_json, replace_path, write_json
    from agentune.xtuner_config import Target, render

    fresh = bool(getattr(args, "fresh", False))
    inputs = check_inputs(cfg)
    cuda = torch.cuda.is_available()
    check_device(cfg, cuda)
    launch = resolve_launch(cfg)
    world = launch.nnodes * launch.nproc_per_node
    fp = fingerprint(cfg, inputs)

    out = cfg.out.resolve()
    work = out.parent / f".{out.name}.partial"
    resume_from = None
    if work.exists():
        old = work / RECORD
        same = old.is_file() and read_json(old).get("fingerprint") == fp
        ckpt = last_checkpoint(work) if same else None
        if fresh or not same or ckpt is None:
            why = "--fresh" if fresh else ("params/inputs changed" if not same else "no complete checkpoint")
            log.info("discarding interrupted run in %s (%s); starting fresh", work, why)
            if launch.node_rank == 0:  # on a shared filesystem only node 0 manages the run dir
                shutil.rmtree(work)
        else:
            resume_from = ckpt
    work.mkdir(parents=True, exist_ok=True)

    target = Target(
        model_path=Path(inputs["base_model"]["path"]).resolve(),
        dataset=cfg.dataset.resolve(),
        xtuner_template=inputs["base_model"]["xtuner_template"],
        cuda=cuda,
        bos_override=bos_override(Path(inputs["base_model"]["path"]), inputs["base_model"]["template"]),
        world_size=world,
    )
    # mmengine dumps its own flattened copy to <work_dir>/<config name>, so the rendered file runs from
    # a subfolder and replaces that dump once training is done.
    config_path = work / "rendered" / CONFIG_FILE
    config_path.parent.mkdir(exist_ok=True)
    config_path.write_text(render(cfg, target), encoding="utf-8")
    record = {
        "status": "running",
        "fingerprint": fp,
        "config": cfg.model_dump(mode="json"),
        **inputs,
        "lora": cfg.lora.model_dump(mode="json"),
        "launch": launch.model_dump(mode="json"),
        "device": "cuda" if cuda else "cpu",
        "world_size": world,
    }
    if resume_from is None or not (work / RECORD).is_file():
        record["resumed_from_iter"] = []
    else:
        record["resumed_from_iter"] = read_json(work / RECORD).get("resumed_from_iter", [])
    start_iter = 0
    if resume_from is not None:
        m = re.search(r"iter_(\d+)", resume_from.name)
        start_iter = int(m.group(1)) if m else 0
        record["resumed_from_iter"].append(start_iter)
        msg = f"resumed from {resume_from.name} (iteration {start_iter}) of the interrupted run in {work}"
        log.info(msg)
        print(f"agentune train: {msg}", file=sys.stderr, flush=True)
    write_json(work / RECORD, record)

    cmd, distributed = xtuner_command(config_path, work, launch, resume_from)
    log.info("running %s", " ".join(cmd))
    t0 = time.time()
    status, tail = run_xtuner(cmd, work / LOG_FILE, start_iter, echo=log.isEnabledFor(logging.DEBUG))
    wall = time.time() - t0
    if status != 0:
        hint = ""
        text = "\n".join(tail)
        if "end should be larger than begin" in text:
            hint = "\nhint: the warmup rounds to 0 iterations on this data; set train.warmup_ratio=0"
        elif "Column 'length' doesn't exist" in text:
            hint = (
                f"\nhint: no sample has a trained (assistant) token within max_length={cfg.max_length} "
                "tokens; raise train.max_length"
            )
        raise StageError(
            f"xtuner training failed (exit status {status}); full log: {work / LOG_FILE}\n"
            f"{error_excerpt(tail)}{hint}"
        )

    if launch.node_rank != 0:
        log.info("node %d finished; checkpoints are written on node 0", launch.node_rank)
        return

    finished = [int(m.group(2)) for line in tail if (m := _ITER.search(line))]
    ckpts = checkpoints(work)
    final = last_checkpoint(work)
    if not ckpts or final is None:
        raise StageError(
            f"xtuner exited 0 but wrote no checkpoint in {work}; see {work / LOG_FILE}\n{error_excerpt(tail)}"
        )
    final_iter = int(re.search(r"iter_(\d+)", final.name).group(1))
    if finished and final_iter != finished[-1]:
        raise StageError(
            f"xtuner exited 0 but the last checkpoint is {final.name}, not iteration {finished[-1]}; "
            f"see {work / LOG_FILE}"
        )

    rows = read_scalars(work)
    os.replace(config_path, work / CONFIG_FILE)
    shutil.rmtree(config_path.parent)
    # mmengine records absolute paths; point `last_checkpoint` at where the run will live.
    (work / "last_checkpoint").write_text(str(out / final.name), encoding="utf-8")
    record.update(
        status="complete",
        final_iter=final_iter,
        checkpoints=[{"file": p.name, "iteration": i} for i, p in ckpts],
        wall_s=round(wall, 1),
        first_loss=rows[0]["loss"] if rows else None,
        last_loss=rows[-1]["loss"] if rows else None,
        distributed=distributed,
    )
    write_json(work / RECORD, record)
    write_loss_curve(rows, cfg.loss_curve)
    replace_path(work, out)
    log.info(
        "trained to iteration %d in %.0f s (loss %s -> %s); checkpoints: %s in %s",
        final_iter,
        wall,
        record["first_loss"],
        record["last_loss"],
        ", ".join(p.name for _, p in ckpts),
        cfg.out,
    )
