"""Check that the installed environment really imports what the pipeline runs (`python -m agentune.core.envcheck`).

Catches the known traps at install time instead of hours into a run: bitsandbytes vs triton (xtuner
pins bitsandbytes 0.45.0, which imports `triton.ops`, gone from triton >= 3.2; the lock file takes a
newer bitsandbytes) and prefect vs fastapi (fastapi >= 0.151 breaks prefect's server at import).
"""

from __future__ import annotations

import importlib
import sys

CHECKS = [
    ("xtuner", "xtuner.utils"),
    ("mmengine", "mmengine.runner"),
    ("transformers", "transformers"),
    ("peft", "peft"),
    ("bitsandbytes", "bitsandbytes"),
    ("deepspeed", "deepspeed"),
    ("datasets", "datasets"),
    ("dvc", "dvc.repo"),
    ("mlflow", "mlflow"),
    ("prefect server", "prefect.server.api.server"),
]


def main() -> int:
    failed = []
    for label, module in CHECKS:
        try:
            importlib.import_module(module)
        except Exception as exc:  # report every failure, not just the first
            failed.append(f"{label}: import {module} failed: {type(exc).__name__}: {exc}")
    if failed:
        print("environment check failed:\n  " + "\n  ".join(failed), file=sys.stderr)
        print("fix: `make clean-venv && make install` (installs requirements.lock)", file=sys.stderr)
        return 1
    print(f"environment ok: {', '.join(label for label, _ in CHECKS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
