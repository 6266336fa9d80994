"""How `train` runs xtuner: the command (plain python for one process, torchrun for several, both through
`agentune.train.xtuner_run`), the process with its output teed to train.log, a tqdm bar fed from
mmengine's log lines, and the traceback excerpt shown when it fails."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from tqdm import tqdm

from agentune.core.errors import StageError
from agentune.train import xtuner_run
from agentune.train.config import Config, LaunchParams


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


def is_distributed(launch: LaunchParams) -> bool:
    """Whether the run goes through torchrun (and xtuner's `--launcher pytorch`)."""
    return launch.launcher == "torchrun" or launch.nnodes * launch.nproc_per_node > 1


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
    if not is_distributed(launch):
        return [sys.executable, "-m", xtuner_run.__name__, *args], False
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
    return [*torchrun, "-m", xtuner_run.__name__, *args, "--launcher", "pytorch"], True


#: mmengine's progress line, `Iter(train) [ 20/60]`
ITER_LINE = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\]")
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
        m = ITER_LINE.search(line)
        if not m:
            return
        it, total = int(m.group(1)), int(m.group(2))
        fields = dict(_FIELD.findall(line))
        if self.bar is None:
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
