"""Read the pipeline's stage order from DVC and run single stages through `dvc repro`.

The DAG lives in `dvc.yaml` only. Orchestrators (the Prefect flow in `flows/pipeline.py`) ask DVC for
the order it would reproduce the stages in (`dvc repro --dry` order) and run each stage with
`dvc repro --single-item <stage>`, so `dvc.lock` records exactly what ran.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from agentune.core.errors import StageError

#: What DVC prints when another DVC process holds the repo lock (`.dvc/tmp/lock`, held while DVC checks
#: and commits) or a read/write lock on a stage's deps/outs (`.dvc/tmp/rwlock`, held while a stage runs).
DVC_LOCK_MESSAGES = ("Unable to acquire lock", "is busy, it is being blocked by")
#: `agentune <stage>` exits 2 on a config error: a retry cannot fix it.
CONFIG_ERROR_EXIT = 2
_EXITED = re.compile(r"exited with (-?\d+)")


class StageFailed(StageError):
    """`dvc repro` of one stage failed; carries the stage command's exit code and its last lines."""

    def __init__(self, stage: str, returncode: int, cmd_exit: int | None, tail: list[str]):
        self.stage, self.returncode, self.cmd_exit, self.tail = stage, returncode, cmd_exit, tail
        why = (
            f"its command exited with {cmd_exit}" if cmd_exit is not None else f"dvc exited with {returncode}"
        )
        hint = " (config error: fix params.yaml; not retried)" if cmd_exit == CONFIG_ERROR_EXIT else ""
        last = "\n".join(tail[-20:])
        super().__init__(f"stage '{stage}' failed: {why}{hint}\n--- last lines of its output ---\n{last}")

    def __reduce__(self):
        return type(self), (self.stage, self.returncode, self.cmd_exit, self.tail)

    @property
    def retryable(self) -> bool:
        """A config error (exit 2) fails the same way every time; anything else may be transient."""
        return self.cmd_exit != CONFIG_ERROR_EXIT


class LockTimeout(StageError):
    """Another DVC/agentune run held the repo lock for longer than we were willing to wait."""


def stage_order(root: str | Path, target: str | None = None) -> list[str]:
    """Stage names in the order `dvc repro [target]` runs them (DVC's own planner, frozen stages kept).

    `target` limits the list to that stage and everything upstream of it, like `dvc repro <target>`.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    root = Path(root).resolve()
    dvcfile = str(root / "dvc.yaml")  # absolute: DVC resolves targets against the cwd
    spec = dvcfile if not target else target if ":" in target else f"{dvcfile}:{target}"
    try:
        with Repo(str(root)) as repo:
            stages = collect_stages(repo, [spec])
            plan = plan_repro(get_active_graph(repo.index.graph), stages)
            return [_address(stage, root) for stage in plan]
    except DvcException as exc:
        what = f"stage '{target}'" if target else "the pipeline"
        raise StageError(
            f"{Path(root) / 'dvc.yaml'}: cannot plan {what}: {exc} (check the stage name with `dvc stage list`)"
        ) from exc


def _address(stage, root: Path) -> str:
    """`name` for stages of the root dvc.yaml, `sub/dvc.yaml:name` otherwise (relative to `root`)."""
    rel = Path(os.path.relpath(os.path.abspath(stage.dvcfile.path), root)).as_posix()
    return stage.name if rel == "dvc.yaml" else f"{rel}:{stage.name}"


def dvc_executable() -> list[str]:
    """Run DVC with this interpreter, so the stages' `agentune` comes from the same environment."""
    return [sys.executable, "-m", "dvc"]


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `dvc repro`: this venv's bin first on PATH (stage commands call `agentune`)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _stream(
    cmd: list[str], cwd: Path, env: dict[str, str], on_line: Callable[[str], None]
) -> tuple[int, list]:
    """Run `cmd`, passing each output line to `on_line` as it comes; kill its process group on abort."""
    tail: deque[str] = deque(maxlen=200)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # one process group: dvc + the stage command, stopped together
    )
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            on_line(line)
        return proc.wait(), list(tail)
    finally:
        if (
            proc.poll() is None
        ):  # interrupted (Ctrl-C, flow cancelled): stop the stage, DVC's lock goes with it
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def repro_stage(
    root: str | Path,
    stage: str,
    *,
    force: bool = False,
    on_line: Callable[[str], None] = print,
    env: dict[str, str] | None = None,
    lock_timeout_s: float = 60.0,
    poll_s: float = 5.0,
) -> list[str]:
    """`dvc repro --single-item <stage>` in `root`, streaming output; returns the output lines.

    If another DVC process holds the repo lock, wait (polling) up to `lock_timeout_s`, then raise
    `LockTimeout`. A failing stage raises `StageFailed` with the stage command's exit code.
    """
    root = Path(root)
    cmd = [*dvc_executable(), "repro", "--single-item", stage, *(["--force"] if force else [])]
    deadline = time.monotonic() + lock_timeout_s
    while True:
        rc, tail = _stream(cmd, root, subprocess_env(env), on_line)
        if rc == 0:
            return tail
        text = "\n".join(tail)
        if any(m in text for m in DVC_LOCK_MESSAGES):
            if time.monotonic() >= deadline:
                blocker = next((ln.strip() for ln in tail if "(PID" in ln), "")
                raise LockTimeout(
                    f"{root}: another DVC process holds a lock stage '{stage}' needs (.dvc/tmp/lock or "
                    f".dvc/tmp/rwlock){': ' + blocker if blocker else ''}; waited {lock_timeout_s:.0f}s. "
                    "Wait for the other run to finish (or raise lock_timeout_s); if no DVC process is running, "
                    "the lock is stale: see https://dvc.org/doc/user-guide/troubleshooting#lock-issue"
                )
            on_line(f"[agentune] a DVC lock is held by another process; retrying in {poll_s:.0f}s")
            time.sleep(poll_s)
            continue
        codes = _EXITED.findall(text)
        raise StageFailed(stage, rc, int(codes[-1]) if codes else None, tail)


@contextlib.contextmanager
def pipeline_lock(root: str | Path, timeout_s: float, owner: str = "", poll_s: float = 2.0) -> Iterator[None]:
    """Hold `.dvc/tmp/agentune-pipeline.lock` for a whole multi-stage run, so two runs never interleave.

    DVC's own lock covers one `dvc repro` call; this one covers the sequence. Waits up to `timeout_s`,
    then raises `LockTimeout` naming the holder. Released when the process exits, even on a crash.
    """
    import fcntl

    path = Path(root) / ".dvc" / "tmp" / "agentune-pipeline.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held open for the duration of the lock
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    raise LockTimeout(
                        f"{path}: another agentune pipeline run holds the lock ({holder}); waited "
                        f"{timeout_s:.0f}s. Wait for it to finish or pass a larger lock_timeout_s."
                    ) from None
                time.sleep(poll_s)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} {owner}".strip() + "\n")
        fh.flush()
        yield
    finally:
        fh.close()  # closing drops the flock


def apply_param_overrides(root: str | Path, overrides: list[str]) -> None:
    """Write `-S`-style overrides (`train.max_iters=5`, `other.yaml:key=v`) into the params files.

    Uses DVC's own code for `dvc exp run -S` (Hydra override grammar, comments in the YAML kept), so
    params.yaml, the outputs and dvc.lock agree after the run.
    """
    if not overrides:
        return
    from dvc.exceptions import DvcException
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    for path, items in to_path_overrides(overrides).items():
        target = Path(root) / path
        if not target.is_file():
            raise StageError(f"override {items}: params file {target} not found")
        try:
            apply_overrides(target, items)
        except DvcException as exc:
            cause = exc.__cause__ or exc
            raise StageError(f"{target}: cannot apply overrides {items}: {cause}") from exc
