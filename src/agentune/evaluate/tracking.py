"""All MLflow logging of the evaluate stage: lineage, metrics per model, tables, charts, the registry.

One experiment for the project; one parent run per pipeline run (git commit, dvc.lock hashes, resolved
params, train loss curve, delta metrics, charts); one child run per evaluated model with metrics at
`step` = training iteration and the per-sample table. The merged model and every checkpoint adapter are
registered as versions that point at their directories (no weight upload); the best checkpoint by
`champion_metric` gets the alias `champion`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from agentune.core.artifacts import dvc_lock_outs
from agentune.core.errors import StageError
from agentune.core.io import read_json
from agentune.evaluate.report import deltas
from agentune.evaluate.results import ModelRun
from agentune.evaluate.scoring import METRICS

log = logging.getLogger(__name__)


class TrackingUnavailable(StageError):
    """The MLflow tracking server cannot be reached."""


def tracking_uri(configured: str | None) -> str:
    """params value, else MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """For an http(s) tracking URI, fail fast with a clear message when the server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return

    try:
        httpx.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI / evaluate.mlflow.tracking_uri) is unreachable: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def read_data_counts(path: Path) -> dict[str, float]:
    """`data/<source>/<count>` from metrics/data.json (convert's counts per source and record kind)."""
    if not path.is_file():
        return {}
    out: dict[str, float] = {}
    for name, source in (read_json(path).get("sources") or {}).items():
        for key in ("records", "kept", "rejected", "heldout", "train"):
            out[f"data/{name}/{key}"] = float(source.get(key, 0))
        for kind, n in (source.get("kinds") or {}).items():
            out[f"data/{name}/kind/{kind}"] = float(n)
    return out


def read_train_loss(path: Path) -> list[tuple[int, float]]:
    """(step, loss) rows of metrics/train_loss.tsv, if train wrote it."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for r in rows:
        try:
            out.append((int(float(r["step"])), float(r["loss"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _table(run: ModelRun) -> dict[str, list]:
    """The model's scored replies as an MLflow table: one row each, one column per field and metric."""
    cols = ["suite", "id", "step", "output", "stopped", "n_tokens", "kind", "action", "args", "expected"]
    table: dict[str, list] = {c: [] for c in cols + list(METRICS)}
    for r in run.samples:
        doc = r.to_json()
        for c in ("suite", "id", "step", "output", "stopped", "n_tokens"):
            table[c].append(doc[c])
        table["kind"].append(r.parsed.kind)
        table["action"].append(r.parsed.action or "")
        table["args"].append(json.dumps(r.parsed.args))
        table["expected"].append(json.dumps(doc["expected"], default=str))
        for m in METRICS:
            table[m].append(r.verdicts.get(m))
    return table


def log_evaluation(
    cfg,
    results: dict[str, Any],
    samples: dict[str, ModelRun],
    model_dirs: dict[str, Path],
    artifacts: list[Path],
    params_doc: dict[str, Any],
) -> dict[str, Any]:
    """Log the whole evaluation; return `{parent_run_id, experiment_id, tracking_uri, run_url}`."""
    uri = tracking_uri(cfg.tracking_uri)
    check_reachable(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.set_experiment(cfg.experiment)
    except Exception as exc:
        raise TrackingUnavailable(
            f"MLflow at {uri}: cannot open experiment {cfg.experiment!r}: {exc}"
        ) from None
    client = MlflowClient()
    tags = {"git_commit": git_commit(), "agentune.stage": "evaluate"}
    for stage, outs in dvc_lock_outs().items():
        tags.update({f"dvc.{stage}.{path}": md5 for path, md5 in outs.items()})
    prefect_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    try:
        from prefect.runtime import flow_run

        prefect_id = prefect_id or flow_run.get_id()
    except Exception:
        pass
    if prefect_id:
        tags["prefect_flow_run_id"] = str(prefect_id)

    child_ids: dict[str, str] = {}
    with mlflow.start_run(run_name="pipeline", tags=tags) as parent:
        mlflow.log_dict(params_doc, "params.json")
        mlflow.log_params(
            {k: str(v)[:500] for k, v in flatten(params_doc.get("evaluate", {}), "evaluate.").items()}
        )
        for step, loss in read_train_loss(Path(cfg.train_loss)):
            mlflow.log_metric("train_loss", loss, step=step)
        data_counts = read_data_counts(Path(cfg.data_metrics))
        if data_counts:
            mlflow.log_metrics(data_counts)
            mlflow.log_artifact(str(cfg.data_metrics))

        for suite, ms in deltas(results).items():
            mlflow.log_metrics({f"delta/{suite}/{m}": v for m, v in ms.items()})
        for path in artifacts:
            if path.is_file():
                mlflow.log_artifact(str(path))
        for name, r in results.items():
            with mlflow.start_run(
                run_name=name, nested=True, tags={"model": name, "kind": r["kind"]}
            ) as child:
                child_ids[name] = child.info.run_id
                mlflow.log_param("iteration", r["iteration"])
                mlflow.log_param("model_dir", str(model_dirs.get(name, "")))
                metrics = {"seconds": r["seconds"], "tokens_per_s": r["tokens_per_s"],
                           "mean_gen_tokens": r["mean_gen_tokens"]}  # fmt: skip
                for suite, agg in r["suites"].items():
                    metrics.update({f"{suite}/{m}": v for m, v in agg.items() if v is not None})
                mlflow.log_metrics(metrics, step=r["iteration"])
                run = samples.get(name)
                if run and run.samples:
                    mlflow.log_table(data=_table(run), artifact_file=f"samples_{name}.json")
                if run and run.cases:
                    cases = [c.to_json() for c in run.cases]
                    mlflow.log_table(data={k: [c[k] for c in cases] for k in cases[0]},
                                     artifact_file=f"cases_{name}.json")  # fmt: skip
        parent_id = parent.info.run_id

    _register(client, cfg, results, model_dirs, child_ids)
    base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    return {
        "parent_run_id": parent_id,
        "experiment_id": exp.experiment_id,
        "tracking_uri": uri,
        "child_run_ids": child_ids,
        "run_url": f"{base}/#/experiments/{exp.experiment_id}/runs/{parent_id}",
    }


def _ensure_model(client, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="agentune fine-tuned models (version -> directory)")


def _register(client, cfg, results, model_dirs, child_ids) -> None:
    """Merged -> `registered_model`; checkpoints -> `<registered_model>-checkpoints`, champion alias."""
    if "merged" in results and "merged" in model_dirs:
        _ensure_model(client, cfg.registered_model)
        mv = client.create_model_version(
            cfg.registered_model, source=Path(model_dirs["merged"]).resolve().as_uri(), run_id=child_ids["merged"],
            tags={"iteration": str(results["merged"]["iteration"])},
        )  # fmt: skip
        client.set_registered_model_alias(cfg.registered_model, "latest_merged", mv.version)
    # the merged model's result stands for the adapter it was merged from (not evaluated twice)
    ckpts = [n for n, r in results.items() if r["kind"] == "checkpoint" or r.get("stands_for")]
    if not ckpts:
        return
    name = f"{cfg.registered_model}-checkpoints"
    _ensure_model(client, name)
    suite, metric = cfg.champion_metric.split("/", 1)
    best, best_v = None, None
    for n in ckpts:
        source = results[n].get("stands_for") or model_dirs[n]
        mv = client.create_model_version(
            name, source=Path(source).resolve().as_uri(), run_id=child_ids[n],
            tags={"iteration": str(results[n]["iteration"])},
        )  # fmt: skip
        v = results[n]["suites"].get(suite, {}).get(metric)
        v = -1.0 if v is None else v
        if best_v is None or v > best_v or (v == best_v and results[n]["iteration"] > best[1]):
            best, best_v = (mv.version, results[n]["iteration"]), v
    client.set_registered_model_alias(name, "champion", best[0])
    log.info("checkpoint iteration %s is the champion by %s = %.3f", best[1], cfg.champion_metric, best_v)
