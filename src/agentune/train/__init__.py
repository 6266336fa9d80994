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
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from agentune.core.artifacts import (
    XTUNER_CONFIG_FILE,
    Checkpoint,
    TrainRecord,
    iteration_of,
    list_checkpoints,
)
from agentune.core.errors import StageError
from agentune.core.io import atomic_file, replace_path
from agentune.train.config import Config, LaunchParams
from agentune.train.inputs import bos_override, check_device, check_inputs, fingerprint, resolve_amp
from agentune.train.launcher import (
    ITER_LINE,
    error_excerpt,
    is_distributed,
    resolve_launch,
    run_xtuner,
    xtuner_command,
)
from agentune.train.xtuner_config import Target, render

log = logging.getLogger(__name__)

__all__ = ["Config", "run", "add_arguments"]

CONFIG_FILE = XTUNER_CONFIG_FILE
LOG_FILE = "train.log"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fresh", action="store_true", help="discard an interrupted run instead of resuming it"
    )


# --------------------------------------------------------------------------------------------------
# the run directory: models/.checkpoints.partial until the run is complete


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
    with atomic_file(path) as fh:
        fh.write("step\tloss\tlr\ttokens_per_s\n")
        for r in rows:
            tps = r.get("tokens_per_sec")
            fh.write(
                f"{int(r['step'])}\t{float(r['loss']):.6f}\t{float(r.get('lr', 0.0)):.6g}\t"
                f"{'' if tps is None else f'{float(tps):.1f}'}\n"
            )


# --------------------------------------------------------------------------------------------------
# the four steps of a run


@dataclass
class Run:
    """One training run: where it works, what it resumes, and its record (agentune_train.json)."""

    cfg: Config
    inputs: dict
    launch: LaunchParams
    cuda: bool
    work: Path  # models/.checkpoints.partial
    out: Path  # models/checkpoints
    resume_from: Path | None
    start_iter: int
    record: dict

    @property
    def config_path(self) -> Path:
        # mmengine dumps its own flattened copy to <work_dir>/<config name>, so the rendered file runs
        # from a subfolder and replaces that dump once training is done.
        return self.work / "rendered" / CONFIG_FILE


def prepare(cfg: Config, fresh: bool) -> Run:
    """Step 1, resume: check the inputs, then resume the interrupted run in the work dir or start anew."""
    inputs = check_inputs(cfg)
    cuda = torch.cuda.is_available()
    check_device(cfg, cuda)
    launch = resolve_launch(cfg)
    fp = fingerprint(cfg, inputs)

    out = cfg.out.resolve()
    work = out.parent / f".{out.name}.partial"
    resume_from = None
    old = TrainRecord.read_if_present(work) if work.exists() else None
    if work.exists():
        same = old is not None and old.fingerprint == fp
        ckpt = last_checkpoint(work) if same else None
        if fresh or not same or ckpt is None:
            why = "--fresh" if fresh else ("params/inputs changed" if not same else "no complete checkpoint")
            log.info("discarding interrupted run in %s (%s); starting fresh", work, why)
            if launch.node_rank == 0:  # on a shared filesystem only node 0 manages the run dir
                shutil.rmtree(work)
        else:
            resume_from = ckpt
    work.mkdir(parents=True, exist_ok=True)

    world = launch.nnodes * launch.nproc_per_node
    record = {
        "status": "running",
        "fingerprint": fp,
        "config": cfg.model_dump(mode="json"),
        **inputs,
        "lora": cfg.lora.model_dump(mode="json"),
        "launch": launch.model_dump(mode="json"),
        "device": "cuda" if cuda else "cpu",
        "amp": resolve_amp(cfg, cuda),
        "world_size": world,
        "resumed_from_iter": [] if resume_from is None or old is None else list(old.resumed_from_iter),
    }
    start_iter = 0
    if resume_from is not None:
        start_iter = iteration_of(resume_from.name) or 0
        record["resumed_from_iter"].append(start_iter)
        msg = f"resumed from {resume_from.name} (iteration {start_iter}) of the interrupted run in {work}"
        log.info(msg)
        print(f"agentune train: {msg}", file=sys.stderr, flush=True)
    return Run(cfg, inputs, launch, cuda, work, out, resume_from, start_iter, record)


def launch(run: Run) -> tuple[float, list[str], bool]:
    """Step 2, launch: render the xtuner config, run xtuner; (wall seconds, last output lines, distributed)."""
    base = run.inputs["base_model"]
    target = Target(
        model_path=Path(base["path"]).resolve(),
        dataset=run.cfg.dataset.resolve(),
        xtuner_template=base["xtuner_template"],
        cuda=run.cuda,
        bos_override=bos_override(Path(base["path"]), base["template"]),
        distributed=is_distributed(run.launch),
        amp=run.record["amp"],
    )
    run.config_path.parent.mkdir(exist_ok=True)
    run.config_path.write_text(render(run.cfg, target), encoding="utf-8")
    TrainRecord(**run.record).write(run.work)

    cmd, distributed = xtuner_command(run.config_path, run.work, run.launch, run.resume_from)
    log.info("running %s", " ".join(cmd))
    t0 = time.time()
    status, tail = run_xtuner(cmd, run.work / LOG_FILE, run.start_iter, echo=log.isEnabledFor(logging.DEBUG))
    wall = time.time() - t0
    if status != 0:
        hint = ""
        text = "\n".join(tail)
        if "end should be larger than begin" in text:
            hint = "\nhint: the warmup rounds to 0 iterations on this data; set train.warmup_ratio=0"
        elif "Column 'length' doesn't exist" in text:
            hint = (
                f"\nhint: no sample has a trained (assistant) token within max_length={run.cfg.max_length} "
                "tokens; raise train.max_length"
            )
        raise StageError(
            f"xtuner training failed (exit status {status}); full log: {run.work / LOG_FILE}\n"
            f"{error_excerpt(tail)}{hint}"
        )
    return wall, tail, distributed


def verify(run: Run, tail: list[str]) -> tuple[list[Checkpoint], Path, int]:
    """Step 3, verify: xtuner exited 0; the checkpoints exist and the last one is the last iteration."""
    finished = [int(m.group(2)) for line in tail if (m := ITER_LINE.search(line))]
    ckpts = list_checkpoints(run.work)
    final = last_checkpoint(run.work)
    if not ckpts or final is None:
        raise StageError(
            f"xtuner exited 0 but wrote no checkpoint in {run.work}; see {run.work / LOG_FILE}\n"
            f"{error_excerpt(tail)}"
        )
    final_iter = iteration_of(final.name)
    if finished and final_iter != finished[-1]:
        raise StageError(
            f"xtuner exited 0 but the last checkpoint is {final.name}, not iteration {finished[-1]}; "
            f"see {run.work / LOG_FILE}"
        )
    return ckpts, final, final_iter


def finish(run: Run, ckpts: list[Checkpoint], final: Path, final_iter: int, wall: float, distributed: bool):
    """Step 4, finish: record the run, write the loss curve, move the work dir onto models/checkpoints."""
    rows = read_scalars(run.work)
    os.replace(run.config_path, run.work / CONFIG_FILE)
    shutil.rmtree(run.config_path.parent)
    # mmengine records absolute paths; point `last_checkpoint` at where the run will live.
    (run.work / "last_checkpoint").write_text(str(run.out / final.name), encoding="utf-8")
    run.record.update(
        status="complete",
        final_iter=final_iter,
        checkpoints=[{"file": c.path.name, "iteration": c.iteration} for c in ckpts],
        wall_s=round(wall, 1),
        first_loss=rows[0]["loss"] if rows else None,
        last_loss=rows[-1]["loss"] if rows else None,
        distributed=distributed,
    )
    TrainRecord(**run.record).write(run.work)
    write_loss_curve(rows, run.cfg.loss_curve)
    replace_path(run.work, run.out)
    log.info(
        "trained to iteration %d in %.0f s (loss %s -> %s); checkpoints: %s in %s",
        final_iter,
        wall,
        run.record["first_loss"],
        run.record["last_loss"],
        ", ".join(c.path.name for c in ckpts),
        run.cfg.out,
    )


def run(cfg: Config, args: argparse.Namespace | None = None) -> None:
    """Train (or resume) and leave models/checkpoints complete, or fail with the real cause."""
    state = prepare(cfg, fresh=bool(getattr(args, "fresh", False)))
    wall, tail, distributed = launch(state)
    if state.launch.node_rank != 0:
        log.info("node %d finished; checkpoints are written on node 0", state.launch.node_rank)
        return
    ckpts, final, final_iter = verify(state, tail)
    finish(state, ckpts, final, final_iter, wall, distributed)
