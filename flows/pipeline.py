"""Prefect flow `agentune-pipeline`: the stages of `dvc.yaml` as Prefect tasks, each run through DVC.

The stage list and order come from DVC (`agentune.core.dvc_dag.stage_order`, DVC's own planner), never from
a second list here. Each task runs `dvc repro --single-item <stage>` in the repo root and streams its
output into the task's Prefect logs, so `dvc.lock` records exactly what ran and a failing stage's real
error is in the UI. Run it directly::

    python flows/pipeline.py --target train -S train.max_iters=5

or serve it as a deployment with `flows/deploy.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from agentune.core.dvc_dag import (
    StageFailed,
    apply_param_overrides,
    pipeline_lock,
    repro_stage,
    stage_order,
)
from agentune.core.errors import StageError

#: Retries (count, backoff delays in seconds) for stages where trying again can help: downloads, and
#: training after a lost node (it resumes from the last checkpoint of its interrupted run, kept in
#: models/.checkpoints.partial outside DVC's outputs).
#: Stages missing here are deterministic on their inputs and are not retried.
RETRY_POLICY: dict[str, tuple[int, list[float]]] = {
    "base_model": (3, [30.0, 120.0, 600.0]),
    "raw_data": (3, [30.0, 120.0, 600.0]),
    "train": (2, [60.0, 600.0]),
}


def _retryable(task_, task_run, state) -> bool:
    """Prefect `retry_condition_fn`: never retry a config error (stage command exit code 2)."""
    exc = state.result(raise_on_failure=False)
    return not (isinstance(exc, StageFailed) and not exc.retryable)


@task(cache_policy=NO_CACHE, retry_condition_fn=_retryable)
def dvc_stage(repo: str, stage: str, force: bool, lock_timeout_s: float, env: dict[str, str]) -> None:
    """Run one DVC stage (`dvc repro --single-item`), streaming its output into the Prefect logs."""
    logger = get_run_logger()
    repro_stage(repo, stage, force=force, on_line=logger.info, env=env, lock_timeout_s=lock_timeout_s)


def _flow_run_info() -> tuple[str, str | None]:
    from prefect.runtime import flow_run

    return str(flow_run.get_id() or ""), flow_run.get_flow_run_ui_url()


@flow(name="agentune-pipeline")
def agentune_pipeline(
    target: str | None = None,
    profile: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
    repo: str = ".",
    lock_timeout_s: float = 60.0,
    retries: dict[str, int] | None = None,
    retry_delay_s: float | None = None,
) -> list[str]:
    """Reproduce the DVC pipeline (or `target` and what it depends on) stage by stage.

    Args:
        target: a stage of dvc.yaml; None runs every stage, like `dvc repro`.
        profile: merge params/<profile>.yaml into params.yaml first, as `agentune profile` does.
        overrides: `section.key=value` params, written into params.yaml first, as `dvc exp run -S` does.
        force: rerun the selected stages even if DVC finds them up to date (`dvc repro --force`).
        repo: the DVC project root.
        lock_timeout_s: how long to wait for another run holding the repo lock before failing.
        retries: per-stage retry counts replacing `RETRY_POLICY` entries (e.g. {"train": 0}).
        retry_delay_s: one delay for every retry instead of the policy's backoff (tests, impatient users).

    Returns the stages run, in order.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    run_id, run_url = _flow_run_info()
    with pipeline_lock(root, lock_timeout_s, owner=f"prefect flow run {run_id}"):
        if profile:
            from agentune.cli import validate_params
            from agentune.core.profiles import apply_profile

            changes = apply_profile(profile, validate_params, root / "params.yaml", root / "params")
            logger.info("profile %s applied to params.yaml (%d change(s))", profile, len(changes))
        apply_param_overrides(root, overrides or [])
        if overrides:
            logger.info("params overrides written to params.yaml: %s", ", ".join(overrides))
        stages = stage_order(root, target)
        logger.info("stages from %s/dvc.yaml, in DVC order: %s", root, " -> ".join(stages))
        env = {"PREFECT__FLOW_RUN_ID": run_id, "AGENTUNE_PREFECT_FLOW_RUN_URL": run_url or ""}
        for stage in stages:
            count, delays = RETRY_POLICY.get(stage, (0, [0.0]))
            count = (retries or {}).get(stage, count)
            delay: Any = retry_delay_s if retry_delay_s is not None else delays
            stage_task = dvc_stage.with_options(
                name=stage, task_run_name=stage, retries=count, retry_delay_seconds=delay
            )
            stage_task(str(root), stage, force, lock_timeout_s, env)
        if "evaluate" in stages:
            publish_results(str(root), run_id, run_url)
    return stages


@task(name="publish-results", cache_policy=NO_CACHE)
def publish_results(repo: str, flow_run_id: str, flow_run_url: str | None) -> None:
    """Prefect artifacts for the run (metrics table, MLflow link, model/report links); cross-link MLflow."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from agentune.core.artifacts import dvc_lock_outs
    from agentune.core.io import read_json

    logger = get_run_logger()
    root = Path(repo)
    metrics = root / "metrics" / "eval.json"
    if metrics.is_file():
        rows = metrics_rows(read_json(metrics))
        create_table_artifact(
            key="agentune-eval-metrics",
            table=rows,
            description=f"Function-calling metrics before (base) and after (merged) fine-tuning, from {metrics}",
        )
    tracking = _read_mlflow_info(root / "reports")
    create_markdown_artifact(key="agentune-mlflow-run", markdown=mlflow_markdown(tracking, flow_run_url))
    if tracking.get("parent_run_id"):
        _tag_mlflow_run(tracking, flow_run_id, flow_run_url, logger)
    versions = {p: md5 for outs in dvc_lock_outs(root / "dvc.lock").values() for p, md5 in outs.items()}
    for key, rel, what in (
        ("agentune-merged-model", "models/merged", "merged model"),
        ("agentune-eval-report", "reports/eval.md", "evaluation report"),
    ):
        path = root / rel
        if path.exists():
            version = f" (dvc md5 {versions[rel][:12]})" if rel in versions else ""
            create_link_artifact(
                key=key, link=path.resolve().as_uri(), link_text=f"{rel}{version}", description=f"The {what}"
            )


def metrics_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows `metric, base, merged, delta, n` for the headline metrics of metrics/eval.json."""
    models = doc.get("models", {})
    names = list(models)
    if not names:
        return []
    before = "base" if "base" in models else names[0]
    after = "merged" if "merged" in models else names[-1]
    headline = doc.get("headline") or [
        f"{suite}/{m}"
        for suite, agg in models[after].items()
        if isinstance(agg, dict)
        for m in agg
        if m != "n"
    ]
    rows = []
    for name in headline:
        suite, _, metric = name.partition("/")
        b = models[before].get(suite, {}) if isinstance(models[before].get(suite), dict) else {}
        a = models[after].get(suite, {}) if isinstance(models[after].get(suite), dict) else {}
        if metric not in a and metric not in b:
            continue
        bv, av = b.get(metric), a.get(metric)
        delta = round(av - bv, 4) if isinstance(av, int | float) and isinstance(bv, int | float) else None
        rows.append({"metric": name, before: bv, after: av, "delta": delta, "n": a.get("n", b.get("n"))})
    return rows


def _read_mlflow_info(report_dir: Path) -> dict[str, Any]:
    from agentune.core.artifacts import MlflowRunRecord

    try:
        return MlflowRunRecord.read(report_dir).dump()
    except (StageError, ValueError):
        path = MlflowRunRecord.file(report_dir)
        return {"status": "missing", "error": f"{path} not found (evaluate did not log to MLflow)"}


def mlflow_markdown(info: dict[str, Any], flow_run_url: str | None) -> str:
    """Markdown pointing at the MLflow parent run of this pipeline run."""
    if not info.get("parent_run_id"):
        why = info.get("error") or f"status: {info.get('status', 'unknown')}"
        return f"# MLflow\n\nNo MLflow parent run for this flow run ({why})."
    lines = [
        "# MLflow parent run",
        "",
        f"- run: [{info['parent_run_id']}]({info.get('run_url', '')})",
        f"- experiment id: `{info.get('experiment_id', '?')}`",
        f"- tracking URI: `{info.get('tracking_uri', '?')}` (open with `mlflow ui` on 127.0.0.1:5000)",
    ]
    for name, run_id in (info.get("child_run_ids") or {}).items():
        lines.append(f"- child run `{name}`: `{run_id}`")
    if flow_run_url:
        lines.append(f"- this Prefect flow run: {flow_run_url}")
    return "\n".join(lines)


def _tag_mlflow_run(info: dict[str, Any], flow_run_id: str, flow_run_url: str | None, logger) -> None:
    """Point the MLflow parent run back at this flow run (the evaluate stage tags the id itself)."""
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=info["tracking_uri"])
        client.set_tag(info["parent_run_id"], "prefect_flow_run_id", flow_run_id)
        if flow_run_url:
            client.set_tag(info["parent_run_id"], "prefect_flow_run_url", flow_run_url)
    except Exception as exc:  # MLflow down must not fail a finished pipeline
        logger.warning("could not tag MLflow run %s: %s", info.get("parent_run_id"), exc)


def main(argv: list[str] | None = None) -> int:
    """`python flows/pipeline.py [--target STAGE] [-S k=v ...] [--force]`: run the flow once."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default=None, help="stage to reproduce with its upstream (default: all)")
    p.add_argument("--profile", default=None, help="params profile to apply first, e.g. tiny")
    p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--force", action="store_true", help="rerun stages even if up to date")
    p.add_argument("--repo", default=".", help="DVC project root (default: %(default)s)")
    p.add_argument("--lock-timeout", type=float, default=60.0, help="seconds to wait for the repo lock")
    args = p.parse_args(argv)
    state = agentune_pipeline(
        target=args.target,
        profile=args.profile,
        overrides=args.overrides,
        force=args.force,
        repo=args.repo,
        lock_timeout_s=args.lock_timeout,
        return_state=True,
    )
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
