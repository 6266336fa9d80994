"""llama.cpp's own converters, from the pinned `llama-cpp-python` source package.

The source package vendors a whole llama.cpp checkout: `convert_hf_to_gguf.py` (with its `conversion/`
package), `convert_lora_to_gguf.py` and the `gguf-py` of the same commit (a PyPI `gguf` of another
release breaks the converter). It is fetched once (`pip download --no-deps`, sha256 checked), and those
files are extracted into the cache; `make llama-cpp` builds the runtime from the same package
(requirements-llama-cpp.txt pins the same version and hash), so converter and runtime match.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from agentune.core import wheels
from agentune.core.errors import StageError

log = logging.getLogger(__name__)

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
#: what the stage uses of the vendored llama.cpp checkout
MEMBERS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py", "LICENSE")


def converters(cache_dir: str | Path) -> Path:
    """The folder holding llama.cpp's converters (extracted from the pinned source package once)."""
    cache_dir = Path(cache_dir)
    dest = cache_dir / f"llama.cpp-{VERSION}"
    if all((dest / m).exists() for m in MEMBERS):
        return dest
    sdist = wheels.fetch_wheel(
        PACKAGE, VERSION, SHA256, cache_dir, "agentune.gguf.release.SHA256", sdist=True
    )
    prefix = f"{PACKAGE.replace('-', '_')}-{VERSION}/vendor/llama.cpp/"
    tmp = cache_dir / f".llama.cpp-{VERSION}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        members = [
            m for m in tar.getmembers()
            if m.name.startswith(prefix) and m.name[len(prefix):].split("/")[0] in MEMBERS
        ]  # fmt: skip
        for m in members:
            m.name = m.name[len(prefix) :]
        tar.extractall(tmp, members=members, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    log.info("llama.cpp converters of %s %s -> %s", PACKAGE, VERSION, dest)
    return dest


def run_script(tools: Path, script: str, args: list[str]) -> str:
    """Run one of llama.cpp's Python scripts (a path in `tools`) or one of this package's modules
    (`-m agentune.gguf...`) with the release's own gguf-py first on the path; its stdout, or a
    StageError with its last lines."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tools / "gguf-py"), os.environ.get("PYTHONPATH")])),
    }
    env.pop("NO_LOCAL_GGUF", None)
    target = ["-m", script] if script.startswith("agentune.") else [str(tools / script)]
    cmd = [sys.executable, *target, *args]
    log.info("running %s %s", target[-1], " ".join(a for a in args if not a.startswith("{")))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        who = script if script.startswith("agentune.") else f"llama.cpp's {script}"
        raise StageError(f"{who} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def write_metadata(tools: Path, src: Path, dst: Path, values: dict, eot_id: int | None) -> None:
    """`agentune.gguf.metadata.rewrite` with the release's gguf-py."""
    args = ["write", str(src), str(dst), json.dumps(values)] + ([str(eot_id)] if eot_id is not None else [])
    run_script(tools, "agentune.gguf.metadata", args)


def read_metadata(tools: Path, path: Path) -> dict:
    """A GGUF's metadata (`agentune.gguf.metadata.read`, with the release's gguf-py)."""
    return json.loads(run_script(tools, "agentune.gguf.metadata", ["read", str(path)]))
