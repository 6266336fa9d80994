"""The Prefect flow over the DVC stages, against a real temporary Prefect server (test harness).

Flow mechanics run on a small real DVC project (git + `dvc init` + python scripts as stage commands)
built per test; the stage order of the project's own dvc.yaml is checked against DVC's planner output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO

REPO_ROOT = REPO
if str(REPO_ROOT) not in sys.path:  # the flows package lives at the repository root
    sys.path.insert(0, str(REPO_ROOT))

from helpers import BFCL_CACHE, LLAMA_CPP_CACHE, WHEEL_CACHE  # noqa: E402
from helpers.toy_dvc import DVC, make_project  # noqa: E402


def dvc_dry_order(root: Path, *target: str) -> list[str]:
    """Stages in the order `dvc repro --dry --force` announces them."""
    out = subprocess.run(
        [*DVC, "repro", "--dry", "--force", *target], cwd=root, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return re.findall(r"Running stage '([^']+)'", out.stdout)


def dvc_dag_edges(root: Path) -> set[tuple[str, str]]:
    """(upstream, downstream) stage pairs from `dvc dag --dot`."""
    out = subprocess.run([*DVC, "dag", "--dot"], cwd=root, capture_output=True, text=True, check=True).stdout
    return {(a, b) for a, b in re.findall(r'"([^"]+)"\s*->\s*"([^"]+)"', out)}


@pytest.fixture(scope="module")
def prefect_api():
    """One real temporary Prefect server (SQLite) for this module's flow runs."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def project(tmp_path) -> Path:
    return make_project(tmp_path / "proj")


def _run(flow_kwargs: dict):
    from flows.pipeline import agentune_pipeline

    return agentune_pipeline(**flow_kwargs, return_state=True)


def _task_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(runs, key=lambda r: r.start_time or r.expected_start_time)


def _logs(flow_run_id, must_contain: str, timeout_s: float = 30.0) -> str:
    """All log messages of a flow run, polling until `must_contain` arrives (logs ship asynchronously)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        text = "\n".join(log.message for log in logs)
        if must_contain in text:
            break
        time.sleep(0.5)
    return text


def test_stage_order_of_the_project_dvc_yaml_is_dvcs():
    from agentune.core.dvc_dag import stage_order

    # DVC orders stages that do not depend on each other (base_model, raw_data) differently from one
    # process to the next: both plans must hold the same stages, each upstream stage before its users
    edges = dvc_dag_edges(REPO_ROOT)
    listed = subprocess.run(
        [*DVC, "stage", "list", "--name-only"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    for target, stages in (
        (None, sorted(listed.stdout.split())),
        ("convert", ["base_model", "convert", "raw_data"]),
    ):
        for order in (stage_order(REPO_ROOT, target), dvc_dry_order(REPO_ROOT, *filter(None, [target]))):
            assert sorted(order) == stages, (target, order)
            for up, down in edges:
                if up in order and down in order:
                    assert order.index(up) < order.index(down), (target, up, down)


def test_flow_runs_stages_through_dvc_and_resumes_a_crashed_stage(prefect_api, project):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from agentune.core.dvc_dag import stage_order

    state = _run(
        dict(
            repo=str(project),
            overrides=["prepare.n=5", "+train.crash_once=true"],
            retries={"train": 1},
            retry_delay_s=0,
        )
    )
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id

    # Task names and order are DVC's (the file lists evaluate first on purpose).
    expected = dvc_dry_order(project)
    assert expected == stage_order(project)
    assert expected.index("prepare") < expected.index("train") < expected.index("evaluate")
    runs = _task_runs(flow_run_id)
    stage_runs = [r for r in runs if r.name in expected]
    assert [r.name for r in stage_runs] == expected
    train = next(r for r in stage_runs if r.name == "train")
    assert train.run_count == 2  # SIGKILLed once, retried

    # The crashed attempt's checkpoints survived (persist: true) and the retry resumed from step 2.
    assert (project / "ckpt" / "log.txt").read_text().split("\n")[:2] == ["start 0", "start 2"]
    assert sorted(p.name for p in (project / "ckpt").glob("iter_*")) == [f"iter_{i}" for i in range(1, 5)]

    # Overrides went into params.yaml like `dvc exp run -S` (comments kept) and dvc.lock recorded them.
    params = (project / "params.yaml").read_text()
    assert "n: 5  # characters" in params and "crash_once: true" in params
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["prepare"] == {"n": 5}
    assert set(lock["stages"]) == set(expected)
    status = subprocess.run(
        [*DVC, "status", "--json"], cwd=project, capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout) == {}

    # Stage output is streamed into the task logs.
    logs = _logs(flow_run_id, "resuming from step 2")
    assert "prepared 5" in logs and "resuming from step 2" in logs

    # Artifacts through the API: metrics table, MLflow markdown, links to the merged model and report.
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in arts}
    assert set(by_key) >= {
        "agentune-eval-metrics",
        "agentune-mlflow-run",
        "agentune-merged-model",
        "agentune-eval-report",
    }
    table = by_key["agentune-eval-metrics"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert table == [{"metric": "heldout/call_em", "base": 0.25, "merged": 0.75, "delta": 0.5, "n": 4}]
    assert (project / "models" / "merged").as_uri() in by_key["agentune-merged-model"].data
    md5 = next(o["md5"] for o in lock["stages"]["evaluate"]["outs"] if o["path"] == "models/merged")
    assert md5[:12] in by_key["agentune-merged-model"].data


def test_failing_stage_fails_the_flow_with_its_error_and_config_errors_are_not_retried(prefect_api, project):
    state = _run(
        dict(
            repo=str(project),
            target="train",
            overrides=["+train.exit_code=2"],
            retries={"train": 3},
            retry_delay_s=0,
        )
    )
    assert state.is_failed()
    assert "stage 'train' failed: its command exited with 2" in state.message
    flow_run_id = state.state_details.flow_run_id
    logs = _logs(flow_run_id, "train.exit_code is set")
    assert "train: config error: train.exit_code is set" in logs
    runs = {r.name: r for r in _task_runs(flow_run_id)}
    assert set(runs) == {"prepare", "train"}  # target=train: the stage and what it depends on
    assert runs["train"].state.is_failed() and runs["train"].run_count == 1  # exit 2: no retry
    assert "train" not in yaml.safe_load((project / "dvc.lock").read_text())["stages"]

    # Any other failure is retried (here: exit 1 every time, 1 + 2 attempts).
    state = _run(
        dict(
            repo=str(project),
            target="train",
            overrides=["train.exit_code=1"],
            retries={"train": 2},
            retry_delay_s=0,
        )
    )
    assert state.is_failed()
    train = next(r for r in _task_runs(state.state_details.flow_run_id) if r.name == "train")
    assert train.run_count == 3


def test_a_run_waits_for_the_dvc_lock_then_fails_clearly_and_leaves_dvc_lock_intact(prefect_api, project):
    assert _run(dict(repo=str(project), target="train")).is_completed()
    lock_before = (project / "dvc.lock").read_bytes()
    (project / "slow.hold").write_text("1")
    holder = subprocess.Popen(
        [*DVC, "repro", "--single-item", "slow"], cwd=project, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not (project / "slow.started").exists():
            assert time.monotonic() < deadline and holder.poll() is None, "slow stage did not start"
            time.sleep(0.2)
        state = _run(dict(repo=str(project), target="train", force=True, lock_timeout_s=4))
        assert state.is_failed()
        assert "another DVC process holds a lock stage 'prepare' needs" in state.message
        assert (project / "dvc.lock").read_bytes() == lock_before
    finally:
        (project / "slow.hold").unlink()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert "slow" in yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert _run(dict(repo=str(project), target="train", force=True)).is_completed()


def test_two_pipeline_runs_never_interleave(project):
    from agentune.core.dvc_dag import LockTimeout, pipeline_lock

    code = (
        "import sys, time, pathlib\n"
        "from agentune.core.dvc_dag import pipeline_lock\n"
        f"with pipeline_lock({str(project)!r}, 5, owner='other run'):\n"
        f"    pathlib.Path({str(project / 'held')!r}).write_text('1'); time.sleep(30)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not (project / "held").exists():
            assert time.monotonic() < deadline and other.poll() is None
            time.sleep(0.1)
        with pytest.raises(LockTimeout, match="another agentune pipeline run holds the lock .*other run"):
            with pipeline_lock(project, 1, poll_s=0.2):
                pass
    finally:
        other.kill()
        other.wait()
    with pipeline_lock(project, 5):  # a killed holder releases it
        pass


def test_retry_policy_retries_only_where_it_can_help():
    from agentune import STAGES
    from flows.pipeline import RETRY_POLICY

    assert set(RETRY_POLICY) <= set(STAGES)
    assert {s for s, (n, _) in RETRY_POLICY.items() if n > 0} == {"base_model", "raw_data", "train"}


def test_unknown_target_and_bad_override_are_clear_errors(project):
    from agentune.core.dvc_dag import apply_param_overrides, stage_order
    from agentune.core.errors import StageError

    with pytest.raises(StageError, match="cannot plan stage 'nope'"):
        stage_order(project, "nope")
    with pytest.raises(StageError, match="cannot apply overrides .*prepare.typo"):
        apply_param_overrides(project, ["prepare.typo=1"])
    assert "typo" not in (project / "params.yaml").read_text()


def test_flow_cli_help():
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "flows" / "pipeline.py"), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
    )
    assert out.returncode == 0 and "--target" in out.stdout


def _copy_repo(dest: Path) -> Path:
    """This working tree's tracked + untracked-not-ignored files, as a fresh git repo."""
    from flows.local_server import copy_repo

    return copy_repo(REPO_ROOT, dest)


@pytest.mark.network
@pytest.mark.slow
def test_tiny_profile_end_to_end(prefect_api, tmp_path):
    """The real pipeline (every stage of dvc.yaml) on the tiny model through the flow."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from agentune.core.dvc_dag import stage_order

    repo = _copy_repo(tmp_path / "repo")
    overrides = [f"evaluate.bfcl.cache_dir={BFCL_CACHE}", f"convert.leak_check.bfcl_cache_dir={BFCL_CACHE}",
                 f"base_model.smollm2.cache_dir={WHEEL_CACHE}", f"gguf.cache_dir={LLAMA_CPP_CACHE}"]  # fmt: skip
    state = _run(dict(repo=str(repo), profile="tiny", overrides=overrides))
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    stages = stage_order(repo)
    assert [r.name for r in _task_runs(flow_run_id) if r.name in stages] == stages
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(stages)
    assert "source: tiny" in (repo / "params.yaml").read_text()

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in arts}
    table = by_key["agentune-eval-metrics"].data
    table = json.loads(table) if isinstance(table, str) else table
    metrics = json.loads((repo / "metrics" / "eval.json").read_text())
    assert [row["metric"] for row in table] == metrics["headline"]
    assert (
        table[0]["merged"]
        == metrics["models"]["merged"][table[0]["metric"].split("/")[0]][table[0]["metric"].split("/")[1]]
    )

    # MLflow parent run <-> Prefect flow run.
    info = json.loads((repo / "reports" / "mlflow_run.json").read_text())
    assert info["parent_run_id"] in by_key["agentune-mlflow-run"].data
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri=info["tracking_uri"]).get_run(info["parent_run_id"]).data.tags
    assert tags["prefect_flow_run_id"] == str(flow_run_id)
    assert str(flow_run_id) in tags["prefect_flow_run_url"]
