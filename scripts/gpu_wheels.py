"""`make gpu-wheels`: the wheels a lent GPU machine needs to run `benchmarks/gpu_e2e.py`, in .gpu-wheels/.

The GPU machine (docs/train.md, "On a lent GPU machine") has Python 3.12, torch 2.11 (CUDA 13.0),
accelerate, pyarrow, pandas, numpy, jinja2 and the other packages of its image, but no package index:
no xtuner, mmengine, DeepSpeed, bitsandbytes, datasets or pydantic, and transformers 5.x where xtuner
0.2.0 pins 4.48.0. This script downloads, for CPython 3.12 on manylinux x86_64, the versions
`requirements.lock` pins, with two changes that keep the folder under its 50 MiB budget:

- bitsandbytes keeps only the CUDA 13.0 library torch 2.11 loads (and the CPU one): the published wheel
  carries one library per CUDA and ROCm release (42 MB);
- DeepSpeed is built here as a pure-Python wheel (`DS_BUILD_OPS=0`: its ops compile just in time, when
  used, and ZeRO-2 with PyTorch's AdamW needs none).

Writes .gpu-wheels/*.whl and .gpu-wheels/MANIFEST.json (file, bytes, sha256). Prints the total.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from agentune.core.io import atomic_dir, sha256_file

REPO = Path(__file__).resolve().parents[1]
#: what the GPU machine lacks (or has at another version) for agentune's train, export and evaluate
#: stages with xtuner; versions come from requirements.lock
PACKAGES = (
    "xtuner", "mmengine", "transformers", "tokenizers", "huggingface_hub", "peft", "datasets", "dill",
    "multiprocess", "fsspec", "bitsandbytes", "deepspeed", "hjson", "pydantic", "pydantic_core",
    "annotated-types", "typing-inspection", "loguru", "addict", "termcolor", "yapf", "platformdirs",
    "transformers-stream-generator", "ruamel.yaml", "orjson", "datasketch",
)  # fmt: skip
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
            "--abi", "none"] + [f for p in ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64",
            "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any") for f in ("--platform", p)]  # fmt: skip
#: bitsandbytes' native libraries kept: torch 2.11+cu130 loads the CUDA 13.0 one
BNB_KEEP = ("libbitsandbytes_cuda130.so", "libbitsandbytes_cpu.so")
BUDGET_MIB = 50


def locked_versions(lock: Path) -> dict[str, str]:
    """`name -> version` of requirements.lock, names normalised as pip does."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip(*args: str, env: dict | None = None, check: bool = True) -> bool:
    """Run pip; False when it fails and `check` is off, else exit naming the command and its output."""
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 and check:
        sys.exit(f"gpu-wheels: `{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.returncode == 0


def fetch(spec: str, dest: Path) -> None:
    """The binary wheel for the GPU machine's platform, else a wheel built here (pure-Python sdists)."""
    if not pip(
        "download", "-q", "--no-deps", "--only-binary=:all:", *PLATFORM, "-d", str(dest), spec, check=False
    ):
        pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), spec)


def build_deepspeed(spec: str, dest: Path) -> None:
    """DeepSpeed as a pure-Python wheel: no ops compiled ahead of time (they build just in time)."""
    env = {**os.environ, "DS_BUILD_OPS": "0", "DS_BUILD_AIO": "0", "DS_BUILD_SPARSE_ATTN": "0"}
    pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), spec, env=env)


def trim_bitsandbytes(wheel: Path) -> Path:
    """Rewrite the wheel without the native libraries the GPU machine's torch does not load."""
    out = wheel.with_name(wheel.name + ".trimmed")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        dropped = {
            n
            for n in src.namelist()
            if re.search(r"libbitsandbytes_[^/]+\.so$", n) and not n.endswith(BNB_KEEP)
        }
        for info in src.infolist():
            if info.filename in dropped:
                continue
            data = src.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(ln for ln in lines if ln.split(",", 1)[0] not in dropped) + "\n").encode()
            dst.writestr(info, data)
    out.replace(wheel)
    return wheel


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / ".gpu-wheels", help="folder (default: %(default)s)")
    args = p.parse_args()
    pins = locked_versions(REPO / "requirements.lock")
    missing = [n for n in PACKAGES if normalise(n) not in pins]
    if missing:
        sys.exit(f"gpu-wheels: {missing} not pinned in requirements.lock")
    with atomic_dir(args.out) as stage:  # a failed or interrupted run leaves the previous folder
        for name in PACKAGES:
            spec = f"{name}=={pins[normalise(name)]}"
            print(f"  {spec}", flush=True)
            if normalise(name) == "deepspeed":
                build_deepspeed(spec, stage)
            else:
                fetch(spec, stage)
        for wheel in stage.glob("bitsandbytes-*.whl"):
            trim_bitsandbytes(wheel)
        manifest = [
            {"file": w.name, "bytes": w.stat().st_size, "sha256": sha256_file(w)}
            for w in sorted(stage.glob("*.whl"))
        ]
        (stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    total = sum(m["bytes"] for m in manifest)
    print(f"{args.out}: {len(manifest)} wheels, {total / 2**20:.1f} MiB (budget {BUDGET_MIB} MiB)")
    if total > BUDGET_MIB * 2**20:
        print(f"gpu-wheels: over the {BUDGET_MIB} MiB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
