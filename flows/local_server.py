"""Start and stop a real local `prefect server` (SQLite under a chosen PREFECT_HOME) on 127.0.0.1.

Used by the deployment test and `scripts/prefect_ui_screenshot.py`; every wait is bounded and the
server's whole process group is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment for processes talking to this server (and only to it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        DO_NOT_TRACK="1",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s")


def stop(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    """Stop `proc` and its process group (started with start_new_session=True)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)


@contextlib.contextmanager
def local_prefect_server(home: Path, port: int | None = None, timeout_s: float = 240) -> Iterator[str]:
    """Run `prefect server start --host 127.0.0.1` with PREFECT_HOME=`home`; yield its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    prefect = str(Path(sys.executable).parent / "prefect")
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**prefect_env(home), "PREFECT_UI_API_URL": f"{url}/api"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"{url}/api/health", timeout_s, proc)
        yield f"{url}/api"
    finally:
        stop(proc)
        log.close()


def copy_repo(src: Path, dest: Path) -> Path:
    """A throwaway copy of the working tree `src` (tracked + untracked-not-ignored files), as a git repo."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src, capture_output=True, check=True
    ).stdout.split(b"\0")
    for rel in filter(None, (f.decode() for f in files)):
        path = src / rel
        if path.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    if not (dest / ".dvc").is_dir():
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=dest, check=True)
    return dest
