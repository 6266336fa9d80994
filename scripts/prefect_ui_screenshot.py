"""Screenshot the Prefect UI showing a completed `agentune-pipeline` flow run and its artifacts.

Starts a local `prefect server` (temporary SQLite PREFECT_HOME, 127.0.0.1), runs the flow once on a
DVC project (default: a fresh copy of this repo with the `tiny` profile, i.e. the whole pipeline on the
tiny model), then takes headless-Chromium screenshots of the flow run page and its Artifacts tab::

    .venv/bin/python scripts/prefect_ui_screenshot.py                 # -> docs/prefect_ui_*.png
    .venv/bin/python scripts/prefect_ui_screenshot.py --repo /path/to/project --profile ""

Needs Chromium (`sudo apt-get install chromium` on Debian/Ubuntu); this script installs nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from flows.local_server import copy_repo, local_prefect_server, prefect_env  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def screenshot(browser: str, url: str, out: Path, profile_dir: Path, size: str = "1400,1000") -> None:
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile_dir}", f"--window-size={size}", "--virtual-time-budget=15000",
        f"--screenshot={out}", url,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    if not out.is_file():
        raise SystemExit(f"{browser} wrote no screenshot for {url}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--repo", type=Path, default=None, help="DVC project to run (default: a copy of this repo)"
    )
    p.add_argument("--profile", default="tiny", help="params profile to apply first ('' for none)")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs", help="where the PNGs go")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed for the flow run")
    args = p.parse_args(argv)

    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no Chromium found: install it (Debian/Ubuntu: sudo apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="agentune-ui-") as tmp:
        tmp = Path(tmp)
        repo = args.repo.resolve() if args.repo else copy_repo(REPO_ROOT, tmp / "repo")
        with local_prefect_server(tmp / "prefect-home") as api:
            cmd = [sys.executable, str(REPO_ROOT / "flows" / "pipeline.py"), "--repo", str(repo)]
            if args.profile:
                cmd += ["--profile", args.profile]
            started = time.monotonic()
            env = prefect_env(tmp / "prefect-home", api)
            run = subprocess.run(cmd, cwd=repo, env=env, timeout=args.timeout, capture_output=True, text=True)
            print(f"flow run finished with exit code {run.returncode} in {time.monotonic() - started:.0f} s")
            if run.returncode != 0:
                print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
            flow_run_id, artifacts = latest_flow_run(api)
            ui = api.removesuffix("/api")
            args.out_dir.mkdir(parents=True, exist_ok=True)
            outs = {"prefect_ui_flow_run.png": f"{ui}/runs/flow-run/{flow_run_id}"}
            if "agentune-eval-metrics" in artifacts:
                outs["prefect_ui_metrics.png"] = (
                    f"{ui}/artifacts/artifact/{artifacts['agentune-eval-metrics']}"
                )
            for name, url in outs.items():
                screenshot(browser, url, args.out_dir / name, tmp / "chromium")
                print(f"{args.out_dir / name}: {url} ({(args.out_dir / name).stat().st_size // 1024} KiB)")
    return 0 if run.returncode == 0 else 1


def latest_flow_run(api: str) -> tuple[str, dict[str, str]]:
    """Id of the newest `agentune-pipeline` flow run on the server at `api`, and its artifact ids by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["agentune-pipeline"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        if not runs:
            raise SystemExit("no agentune-pipeline flow run on the server")
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id]))
        )
    print(f"flow run {runs[0].name} ({runs[0].id}): {runs[0].state_name}; artifacts: {[a.key for a in arts]}")
    return str(runs[0].id), {a.key: str(a.id) for a in arts if a.key}


if __name__ == "__main__":
    sys.exit(main())
