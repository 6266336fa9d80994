"""A real `prefect server` on 127.0.0.1, the deployment served by `flows/deploy.py`, a triggered run."""

from __future__ import annotations

import subprocess
import sys
import time

import yaml
from helpers import REPO

REPO_ROOT = REPO
if str(REPO_ROOT) not in sys.path:  # the flows package lives at the repository root
    sys.path.insert(0, str(REPO_ROOT))

from helpers.toy_dvc import make_project  # noqa: E402

from flows.local_server import local_prefect_server, prefect_env, stop  # noqa: E402


def test_served_deployment_runs_on_demand_and_has_the_weekly_schedule(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = make_project(tmp_path / "proj")
    home = tmp_path / "prefect-home"
    with local_prefect_server(home) as api, temporary_settings({PREFECT_API_URL: api}):
        serve_log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
        serving = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "flows" / "deploy.py"),
                "--name",
                "test",
                "--repo",
                str(project),
                "--target",
                "train",
                "--cron",
                "0 3 * * 1",
                "-S",
                "prepare.n=4",
            ],  # fmt: skip
            env=prefect_env(home, api),
            stdout=serve_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deployment = None
            deadline = time.monotonic() + 180
            with get_client(sync_client=True) as client:
                while deployment is None:
                    assert serving.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "deployment was not registered in 180 s"
                    try:
                        deployment = client.read_deployment_by_name("agentune-pipeline/test")
                    except Exception:
                        time.sleep(1)
                crons = [s.schedule.cron for s in deployment.schedules]
                assert crons == ["0 3 * * 1"]
                assert deployment.parameters["target"] == "train"

                flow_run = run_deployment("agentune-pipeline/test", timeout=300, poll_interval=2)
                final = client.read_flow_run(flow_run.id)
            assert final.state.is_completed(), (
                final.state.message,
                (tmp_path / "serve.log").read_text()[-3000:],
            )
        finally:
            stop(serving)
            serve_log.close()
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "train"}
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["prepare"] == {"n": 4}
    assert (project / "data.txt").read_text() == "xxxx"
