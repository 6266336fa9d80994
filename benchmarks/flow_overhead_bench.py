"""Orchestration overhead of the Prefect flow over plain `dvc repro`, on the toy 4-stage DVC project.

Runs `dvc repro --force` and then the `agentune-pipeline` flow with force=True on the same project (the
stages are trivial python scripts, so the difference is what Prefect + one `dvc repro --single-item`
per stage cost). The Prefect server is a temporary one started before timing.

    .venv/bin/python benchmarks/flow_overhead_bench.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers.toy_dvc import DVC, make_project  # noqa: E402


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import agentune_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "proj")
        subprocess.run([*DVC, "repro", "-q"], cwd=project, check=True)  # warm: first run, caches
        t0 = time.perf_counter()
        subprocess.run([*DVC, "repro", "-q", "--force"], cwd=project, check=True)
        dvc_s = time.perf_counter() - t0
        with prefect_test_harness(server_startup_timeout=180):
            t0 = time.perf_counter()
            state = agentune_pipeline(repo=str(project), force=True, return_state=True)
            flow_s = time.perf_counter() - t0
        assert state.is_completed(), state.message
        n = len(state.result())
    print(f"stages: {n}")
    print(f"dvc_repro_force_s: {dvc_s:.2f}")
    print(f"prefect_flow_force_s: {flow_s:.2f}")
    print(f"flow_overhead_per_stage_s: {(flow_s - dvc_s) / n:.2f}")
    print(f"ratio_flow_over_dvc: {flow_s / dvc_s:.2f}")


if __name__ == "__main__":
    main()
