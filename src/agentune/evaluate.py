"""Stage evaluate: function-calling metrics for the base model, every checkpoint adapter and the merged model.

Suites (params `evaluate.suites`): `heldout` (next assistant turn of held-out records), `scenarios` (the
reference write-up's cases run with real Python tools in a loop) and `bfcl` (BFCL simple_python and
irrelevance from the pinned bfcl-eval wheel). Greedy decoding on byte-identical prompts, rendered as
xtuner rendered training samples and stopped on the template's stop tokens. Writes metrics/eval.json,
metrics/eval_curve.tsv (dvc plots), reports/eval.md + PNG charts + per-sample records, then logs
everything to MLflow (parent run + one child per model, registry, `champion` alias).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from agentune.config import StrictModel
from agentune.errors import StageError
from agentune.scoring import METRICS

log = logging.getLogger(__name__)

SUITES = ("heldout", "scenarios", "bfcl")


def _check_metric_names(names: list[str]) -> list[str]:
    for name in names:
        suite, _, metric = name.partition("/")
        if suite not in SUITES + ("bfcl_simple_python", "bfcl_irrelevance") or metric not in METRICS:
            raise ValueError(
                f"{name!r}: expected <suite>/<metric>, suite one of heldout, scenarios, bfcl_simple_python, "
                f"bfcl_irrelevance; metric one of {', '.join(METRICS)}"
            )
    return names


class BfclConfig(StrictModel):
    version: str = "2026.3.23"
    sha256: str = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
    cache_dir: Path = Path(".cache/bfcl")
    simple_python_n: int = Field(60, ge=0)
    irrelevance_n: int = Field(40, ge=0)


class LocalConfig(StrictModel):
    batch_size: int = Field(32, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


class EndpointConfig(StrictModel):
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "agentune"
    api_key_env: str | None = "OPENAI_API_KEY"  # name of the env var holding the key (never the key)
    tool_mode: Literal["native", "react"] = "native"
    timeout_s: float = 120.0


class MlflowConfig(StrictModel):
    enabled: bool = True
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = "agentune"
    registered_model: str = "agentune-merged"
    required: bool = False  # True: an unreachable server fails the stage (eval.json is kept either way)
    champion_metric: str = "heldout/call_em"
    train_loss: Path = Path("metrics/train_loss.tsv")

    @field_validator("champion_metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return _check_metric_names([v])[0]


class Config(StrictModel):
    base_model: Path = Path("models/base")
    adapters: Path = Path("models/adapters")
    merged: Path = Path("models/merged")
    heldout: Path = Path("data/eval/heldout.jsonl")
    models: list[Literal["base", "checkpoints", "merged"]] = ["base", "checkpoints", "merged"]
    suites: list[Literal["heldout", "scenarios", "bfcl"]] = list(SUITES)
    # suites run on the intermediate checkpoints (base and merged always run all of `suites`)
    checkpoint_suites: list[Literal["heldout", "scenarios", "bfcl"]] = list(SUITES)
    heldout_n: int = Field(40, ge=1)
    scenario_max_turns: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    bfcl: BfclConfig = BfclConfig()
    backend: Literal["local", "endpoint"] = "local"
    local: LocalConfig = LocalConfig()
    endpoint: EndpointConfig = EndpointConfig()
    headline: list[str] = [
        "heldout/format_valid", "heldout/tool_name_acc", "heldout/args_json_valid", "heldout/call_em",
        "scenarios/e2e_success", "bfcl_simple_python/call_em", "bfcl_irrelevance/irrelevance_no_call",
    ]  # fmt: skip
    metrics_out: Path = Path("metrics/eval.json")
    curve_out: Path = Path("metrics/eval_curve.tsv")
    report_dir: Path = Path("reports")
    mlflow: MlflowConfig = MlflowConfig()

    @field_validator("headline")
    @classmethod
    def _headline(cls, v: list[str]) -> list[str]:
        return _check_metric_names(v)


def discover_models(cfg: Config) -> list[dict]:
    """Models to evaluate in order: base (iteration 0), adapters by iteration, merged."""
    from agentune.io import read_json

    models = []
    if "base" in cfg.models:
        models.append({"name": "base", "kind": "base", "iteration": 0, "dir": None})
    last_iter = 0
    if "checkpoints" in cfg.models and cfg.adapters.is_dir():
        for d in sorted(p for p in cfg.adapters.glob("iter_*") if p.is_dir()):
            info = read_json(d / "agentune_adapter.json") if (d / "agentune_adapter.json").is_file() else {}
            it = int(info.get("iteration", d.name.split("_", 1)[1]))
            models.append({"name": d.name, "kind": "checkpoint", "iteration": it, "dir": d})
        models[1:] = sorted(models[1:], key=lambda m: m["iteration"])
        last_iter = max((m["iteration"] for m in models if m["kind"] == "checkpoint"), default=0)
    if "merged" in cfg.models and cfg.merged.is_dir():
        info = (
            read_json(cfg.merged / "agentune_merged.json")
            if (cfg.merged / "agentune_merged.json").is_file()
            else {}
        )
        it = int(info.get("iteration", last_iter) or last_iter)
        models.append({"name": "merged", "kind": "merged", "iteration": it, "dir": cfg.merged})
    return models


def load_suites(cfg: Config):
    """Single-turn samples (heldout, bfcl) and the scenarios, as selected in params."""
    from agentune import eval_suites
    from agentune.bfcl_data import fetch_wheel

    samples = []
    if "heldout" in cfg.suites:
        samples += eval_suites.load_heldout(cfg.heldout, cfg.heldout_n)
    if "bfcl" in cfg.suites:
        wheel = fetch_wheel(cfg.bfcl.version, cfg.bfcl.sha256, cfg.bfcl.cache_dir)
        samples += eval_suites.load_bfcl(
            wheel, {"simple_python": cfg.bfcl.simple_python_n, "irrelevance": cfg.bfcl.irrelevance_n}
        )
    scenarios = eval_suites.reference_scenarios() if "scenarios" in cfg.suites else []
    return samples, scenarios


def evaluate_model(backend, samples, scenarios, cfg: Config) -> tuple[dict, list[dict], float, int]:
    """Run every suite on the backend's current model: (suite aggregates, records, seconds, tokens)."""
    from agentune import eval_suites
    from agentune.scoring import aggregate

    t0 = time.perf_counter()
    records = eval_suites.run_single(backend, samples) if samples else []
    cases = []
    if scenarios:
        steps, cases = eval_suites.run_scenarios(backend, scenarios, cfg.scenario_max_turns)
        records += steps
    seconds = time.perf_counter() - t0
    suites: dict[str, dict] = {}
    for suite in dict.fromkeys(r["suite"] for r in records):
        suites[suite] = aggregate([r["verdicts"] for r in records if r["suite"] == suite])
    if cases:
        suites["scenarios"]["e2e_success"] = round(sum(c["e2e_success"] for c in cases) / len(cases), 4)
        suites["scenarios"]["e2e_success_n"] = len(cases)
        for c in cases:
            records.append({**c, "step": -1, "output": "", "stopped": True, "n_tokens": 0,
                            "parsed": {"kind": "case", "action": None, "args": None}, "expected": {},
                            "verdicts": {"e2e_success": c["e2e_success"]}})  # fmt: skip
    tokens = sum(r["n_tokens"] for r in records)
    return suites, records, seconds, tokens


def make_backend(cfg: Config, base_path: Path, template):
    from agentune import generation

    if cfg.backend == "endpoint":
        e = cfg.endpoint
        return generation.EndpointBackend(
            e.base_url, e.model, e.api_key_env, e.tool_mode, cfg.max_new_tokens, e.timeout_s
        )
    return generation.LocalBackend(
        base_path, template, cfg.local.batch_size, cfg.max_new_tokens, cfg.local.device, cfg.local.dtype
    )


def suites_for(m: dict, cfg: Config, samples: list, scenarios: list) -> tuple[list, list]:
    """The prompts a model runs: everything, or `checkpoint_suites` for intermediate checkpoints."""
    if m["kind"] != "checkpoint":
        return samples, scenarios
    keep = set(cfg.checkpoint_suites)
    return [s for s in samples if s.suite.split("_", 1)[0] in keep], scenarios if "scenarios" in keep else []


def evaluate_models(cfg: Config, models: list[dict], samples, scenarios, template, base_path: Path):
    """Evaluate each model in order (base, adapters switched on one loaded base, merged loaded apart)."""
    import gc

    from agentune import generation

    results, per_sample, backend = {}, {}, None
    for m in models:
        if m["kind"] == "merged" and cfg.backend == "local":
            backend = None
            gc.collect()
            backend = generation.LocalBackend(m["dir"], template, cfg.local.batch_size, cfg.max_new_tokens,
                                              cfg.local.device, cfg.local.dtype)  # fmt: skip
        else:
            backend = backend or make_backend(cfg, base_path, template)
            backend.use_adapter(m["name"] if m["kind"] == "checkpoint" else None, m["dir"])
        suites, records, seconds, tokens = evaluate_model(
            backend, *suites_for(m, cfg, samples, scenarios), cfg
        )
        gen_recs = [r for r in records if r["step"] >= 0]
        results[m["name"]] = {
            "iteration": m["iteration"], "kind": m["kind"], "suites": suites, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 2) if seconds else 0.0,
            "mean_gen_tokens": round(tokens / len(gen_recs), 2) if gen_recs else 0.0,
        }  # fmt: skip
        per_sample[m["name"]] = records
        log.info("%s: %.1fs, %s", m["name"], seconds, {s: a.get("format_valid") for s, a in suites.items()})
    return results, per_sample


def check_budget(cfg: Config, samples: list, tokenizer_dir: Path) -> None:
    """Warn, naming the samples, when a right reply would not fit in `max_new_tokens`.

    Checked on every held-out reference turn (the training data's distribution, not only the
    `heldout_n` evaluated) and on BFCL's ground-truth calls.
    """
    from transformers import AutoTokenizer

    from agentune import eval_suites

    if cfg.backend != "local" or not samples:
        return
    pool = [s for s in samples if s.suite != "heldout"]
    if "heldout" in cfg.suites:
        pool += eval_suites.load_heldout(cfg.heldout, n=10**9)  # every reference turn
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    over = eval_suites.over_budget(pool, lambda t: len(tok(t, add_special_tokens=False)["input_ids"]),
                                   cfg.max_new_tokens)  # fmt: skip
    if over:
        shown = ", ".join(f"{sid} ({n})" for sid, n in over[:5])
        log.warning(
            "%d reference replies need more than evaluate.max_new_tokens=%d tokens: %s%s. These samples "
            "cannot count as stopped even when answered right; raise it with -S evaluate.max_new_tokens=%d",
            len(over), cfg.max_new_tokens, shown, " ..." if len(over) > 5 else "", over[0][1],
        )  # fmt: skip


def log_to_mlflow(cfg: Config, results, per_sample, dirs: dict, artifacts: list[Path]) -> None:
    """Send everything to MLflow; an unreachable server warns (or fails if required), outputs stay."""
    from agentune import tracking
    from agentune.config import read_params
    from agentune.io import write_json

    params_doc = read_params() if Path("params.yaml").is_file() else {}
    params_doc = {**params_doc, "evaluate": cfg.model_dump(mode="json")}
    out = cfg.report_dir / "mlflow_run.json"
    try:
        info = tracking.log_evaluation(cfg.mlflow, results, per_sample, dirs, artifacts, params_doc)
    except tracking.TrackingUnavailable as exc:
        msg = f"{exc}\n{cfg.metrics_out} and {cfg.report_dir}/eval.md are written and intact; nothing was sent to MLflow."
        write_json(out, {"status": "unreachable", "error": str(exc)})
        if cfg.mlflow.required:
            raise StageError(msg + " (evaluate.mlflow.required is true)") from None
        log.warning("%s Set evaluate.mlflow.required=true to fail instead.", msg)
        return
    write_json(out, {**info, "status": "logged"})
    log.info("MLflow: parent run %s at %s (%s)", info["parent_run_id"], info["tracking_uri"], info["run_url"])


def run(cfg: Config) -> None:
    """Evaluate every model on every suite, write metrics and the report, then log to MLflow."""
    from agentune import base_model, eval_report
    from agentune.chat_templates import get_template
    from agentune.io import write_json

    template = get_template(base_model.read_provenance(cfg.base_model)["template"])
    base_path = base_model.model_path(cfg.base_model)
    samples, scenarios = load_suites(cfg)
    models = discover_models(cfg) if cfg.backend == "local" else [{"name": "endpoint", "kind": "merged",
                                                                      "iteration": 0, "dir": None}]  # fmt: skip
    if not models:
        raise StageError(f"nothing to evaluate: evaluate.models={cfg.models} found no model directories")
    log.info(
        "evaluating %s on %d prompts + %d scenarios",
        [m["name"] for m in models],
        len(samples),
        len(scenarios),
    )
    check_budget(cfg, samples, base_path)
    results, per_sample = evaluate_models(cfg, models, samples, scenarios, template, base_path)

    # outputs first: nothing computed is lost whatever happens to MLflow
    report = cfg.report_dir
    report.mkdir(parents=True, exist_ok=True)
    suite_n = {s: a["n"] for s, a in next(iter(results.values()))["suites"].items()}
    if scenarios:
        suite_n["scenarios (cases)"] = len(scenarios)
    meta = {"config": cfg.model_dump(mode="json"), "backend": cfg.backend, "suite_n": suite_n,
            "max_new_tokens": cfg.max_new_tokens, "headline": cfg.headline}  # fmt: skip
    eval_report.write_metrics(cfg.metrics_out, results, meta)
    eval_report.write_curve(cfg.curve_out, results, cfg.headline)
    eval_report.write_samples(report / "eval_samples.jsonl", per_sample)
    charts = eval_report.plot_charts(report, results, cfg.headline)
    print(eval_report.write_report(report / "eval.md", results, per_sample, charts, meta))

    if not cfg.mlflow.enabled:
        write_json(report / "mlflow_run.json", {"status": "disabled"})
        return
    dirs = {m["name"]: (m["dir"] or base_path) for m in models}
    log_to_mlflow(cfg, results, per_sample, dirs, [cfg.metrics_out, report / "eval.md", *charts])
