"""What this machine's CPU can do in bf16, decided once for training (`train.amp: auto`) and decoding
(`evaluate.local.dtype: auto`, `agentune.serve`).

Native bf16 arithmetic needs `avx512_bf16` (AMD Zen 4, Intel Cooper Lake and later) or `amx_bf16`
(Intel Sapphire Rapids and later). Without either, PyTorch still computes in bf16 but emulates it: a
576 x 2304 x 1024 matmul ran at 0.7 GFLOP/s in bf16 against 70 GFLOP/s in fp32 on one core of an AMD
EPYC without them (2026-11-30), so `auto` must never pick bf16 there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown CPU"
    return next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
        "unknown CPU",
    )


@dataclass(frozen=True)
class Bf16Support:
    native: bool
    reason: str  # what decided it, for the log line and the error messages


def cpu_bf16() -> Bf16Support:
    """Whether this CPU computes bf16 natively, and why (naming the flags)."""
    flags = cpu_flags()
    found = [f for f in BF16_FLAGS if f in flags]
    if found:
        return Bf16Support(True, f"{cpu_model()} has {' and '.join(found)}")
    return Bf16Support(
        False,
        f"{cpu_model()} has neither {' nor '.join(BF16_FLAGS)}: bf16 would be emulated, far slower than fp32",
    )
