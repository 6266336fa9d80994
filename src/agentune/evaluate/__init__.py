"""Stage evaluate: function-calling metrics for the base model, every checkpoint adapter and the merged model.

Suites (params `evaluate.suites`): `heldout` (next assistant turn of held-out records), `scenarios` (the
reference write-up's cases run with real Python tools in a loop) and `bfcl` (BFCL simple_python and
irrelevance from the pinned bfcl-eval wheel). Greedy decoding on byte-identical prompts, rendered as
xtuner rendered training samples and stopped on the template's stop tokens. Writes metrics/eval.json,
metrics/eval_curve.tsv (dvc plots), reports/eval.md + PNG charts + per-sample records, then logs
everything to MLflow (parent run + one child per model, registry, `champion` alias).
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transformers import AutoTokenizer

from agentune.core.artifacts import (
    BaseModelRecord,
    GgufRecord,
    MergedRecord,
    MlflowRunRecord,
    list_adapters,
    recorded_tool_result,
)
from agentune.core.config import read_params
from agentune.core.errors import StageError
from agentune.evalsets.bfcl import fetch_wheel
from agentune.evalsets.scenarios import Scenario, reference_scenarios
from agentune.evaluate import report as eval_report
from agentune.evaluate import suites as eval_suites
from agentune.evaluate.config import Config
from agentune.evaluate.results import ModelRun
from agentune.evaluate.scoring import aggregate
from agentune.evaluate.suites import Sample
from agentune.inference import generation
from agentune.inference.generation import Backend
from agentune.inference.llama_cpp import LlamaCppBackend
from agentune.protocol.react import ToolResultStyle
from agentune.protocol.templates import get_template

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]


@dataclass(frozen=True)
class ModelUnderTest:
    """One model evaluated: the base (iteration 0), a checkpoint's adapter, the merged model, or an endpoint."""

    name: str
    kind: Literal["base", "checkpoint", "merged", "gguf"]
    iteration: int
    dir: Path | None  # adapter or merged folder, GGUF file; None for the base and an endpoint
    stands_for: Path | None = None  # merged: the adapter it was merged from (evaluated once, as merged)


def discover_models(cfg: Config) -> list[ModelUnderTest]:
    """Models to evaluate in order: base (iteration 0), adapters by iteration, merged.

    Each set of weights is evaluated once: the adapter the merged model was merged from is not run
    again; the merged model stands for it (export's tests prove merged == base + adapter)."""
    models = []
    if "base" in cfg.models:
        models.append(ModelUnderTest("base", "base", 0, None))
    adapters = list_adapters(cfg.adapters) if "checkpoints" in cfg.models else []
    has_merged = "merged" in cfg.models and cfg.merged.is_dir()
    record = MergedRecord.read_if_present(cfg.merged) if has_merged else None
    merged_from = next((a for a in adapters if record and a.name == record.checkpoint), None)
    models += [
        ModelUnderTest(a.name, "checkpoint", a.iteration, a.path) for a in adapters if a is not merged_from
    ]
    if has_merged:
        last_iter = max((a.iteration for a in adapters), default=0)
        it = record.iteration if record is not None and record.iteration else last_iter
        models.append(ModelUnderTest("merged", "merged", it, cfg.merged, merged_from and merged_from.path))
        if merged_from:
            log.info("%s is the merged model's checkpoint: evaluated once, as merged", merged_from.name)
    if "gguf" in cfg.models:
        models += gguf_models(cfg)
    return models


def gguf_models(cfg: Config) -> list[ModelUnderTest]:
    """The merged model's GGUF files (not the LoRA) that `agentune gguf` wrote, decoded by llama.cpp."""
    record = GgufRecord.read(cfg.gguf)
    merged = MergedRecord.read_if_present(cfg.merged)
    it = (merged.iteration if merged else None) or 0
    made = {f["type"]: name for name, f in record.files.items() if f["type"] != "lora"}
    order = [*record.config.get("types", []), *record.config.get("quantize", [])]  # as params list them
    return [ModelUnderTest(f"gguf-{t}", "gguf", it, cfg.gguf / made[t]) for t in order if t in made]


def load_suites(cfg: Config):
    """Single-turn samples (heldout, bfcl) and the scenarios, as selected in params."""
    samples = []
    if "heldout" in cfg.suites:
        samples += eval_suites.load_heldout(cfg.heldout, cfg.heldout_n, cfg.split)
    if "bfcl" in cfg.suites:
        wheel = fetch_wheel(cfg.bfcl.cache_dir)
        samples += eval_suites.load_bfcl(
            wheel,
            {"simple_python": cfg.bfcl.simple_python_n, "irrelevance": cfg.bfcl.irrelevance_n},
            cfg.split,
        )
    scenarios = reference_scenarios() if "scenarios" in cfg.suites else []
    return samples, scenarios


def evaluate_model(
    backend: Backend, samples: list[Sample], scenarios: list[Scenario], cfg: Config, style: ToolResultStyle
) -> tuple[dict, ModelRun, float]:
    """Run every suite on the backend's current model: (suite aggregates, scored replies and cases, seconds)."""
    t0 = time.perf_counter()
    run = ModelRun(eval_suites.run_single(backend, samples) if samples else [])
    if scenarios:
        steps, run.cases = eval_suites.run_scenarios(backend, scenarios, cfg.scenario_max_turns, style)
        run.samples += steps
    seconds = time.perf_counter() - t0
    suites: dict[str, dict] = {}
    sources = list(dict.fromkeys(s.source for s in run.samples if s.source))
    for suite in dict.fromkeys(s.suite for s in run.samples):
        suites[suite] = aggregate([s.verdicts for s in run.samples if s.suite == suite])
        for source in sources if suite == "heldout" and len(sources) > 1 else ():  # a row per training source
            rows = [s.verdicts for s in run.samples if s.suite == suite and s.source == source]
            suites[f"heldout:{source}"] = aggregate(rows)
    if run.cases:
        suites["scenarios"]["e2e_success"] = round(sum(c.e2e_success for c in run.cases) / len(run.cases), 4)
        suites["scenarios"]["e2e_success_n"] = len(run.cases)
    return suites, run, seconds


def make_backend(cfg: Config, base_path: Path, template, style: ToolResultStyle) -> Backend:
    if cfg.backend == "endpoint":
        e = cfg.endpoint
        return generation.EndpointBackend(
            e.base_url, e.model, e.api_key_env, e.tool_mode, cfg.max_new_tokens, e.timeout_s, style
        )
    return generation.LocalBackend(
        base_path, template, cfg.local.batch_size, cfg.max_new_tokens, cfg.local.device, cfg.local.dtype
    )


def suites_for(m: ModelUnderTest, cfg: Config, samples: list, scenarios: list) -> tuple[list, list]:
    """The prompts a model runs: everything, or `checkpoint_suites` for intermediate checkpoints."""
    if m.kind != "checkpoint":
        return samples, scenarios
    keep = set(cfg.checkpoint_suites)
    return [s for s in samples if s.suite.split("_", 1)[0] in keep], scenarios if "scenarios" in keep else []


def tool_result_style(cfg: Config):
    """How tool results go back to the models: as the fine-tuned model's training data sent them."""
    for folder in (cfg.merged, *(a.path for a in list_adapters(cfg.adapters))):
        recorded = recorded_tool_result(folder)
        if recorded:
            return ToolResultStyle.load(recorded)
    return ToolResultStyle()


def evaluate_models(cfg: Config, models: list[ModelUnderTest], samples, scenarios, template, base_path: Path):
    """Evaluate each model in order (base, adapters switched on one loaded base, merged loaded apart)."""
    style = tool_result_style(cfg)
    log.info("tool results go back as %s turns %r", style.role, style.prefix)
    results: dict[str, dict] = {}
    per_sample: dict[str, ModelRun] = {}
    backend: Backend | None = None
    for m in models:
        if m.kind == "gguf":
            backend = None
            gc.collect()
            backend = LlamaCppBackend(
                m.dir, template, cfg.max_new_tokens, cfg.llama_cpp.n_ctx, cfg.llama_cpp.threads
            )
        elif m.kind == "merged" and cfg.backend == "local":
            backend = None
            gc.collect()
            backend = generation.LocalBackend(m.dir, template, cfg.local.batch_size, cfg.max_new_tokens,
                                              cfg.local.device, cfg.local.dtype)  # fmt: skip
        else:
            backend = backend or make_backend(cfg, base_path, template, style)
            backend.use_adapter(m.name if m.kind == "checkpoint" else None, m.dir)
        suites, run, seconds = evaluate_model(backend, *suites_for(m, cfg, samples, scenarios), cfg, style)
        results[m.name] = {
            "iteration": m.iteration, "kind": m.kind, "suites": suites, "seconds": round(seconds, 2),
            "tokens_per_s": round(run.tokens / seconds, 2) if seconds else 0.0,
            "mean_gen_tokens": round(run.tokens / len(run.samples), 2) if run.samples else 0.0,
        }  # fmt: skip
        if m.stands_for:
            results[m.name]["stands_for"] = str(m.stands_for)
        per_sample[m.name] = run
        log.info("%s: %.1fs, %s", m.name, seconds, {s: a.get("format_valid") for s, a in suites.items()})
    return results, per_sample


def check_budget(cfg: Config, samples: list, tokenizer_dir: Path) -> None:
    """Warn, naming the samples, when a right reply would not fit in `max_new_tokens`.

    Checked on every held-out reference turn (the training data's distribution, not only the
    `heldout_n` evaluated) and on BFCL's ground-truth calls.
    """
    if cfg.backend != "local" or not samples:
        return
    pool = [s for s in samples if s.suite != "heldout"]
    if "heldout" in cfg.suites:
        pool += eval_suites.load_heldout(cfg.heldout, 10**9, cfg.split)  # every reference turn
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
    # MLflow loads here only: with evaluate.mlflow.enabled false the stage runs where MLflow is not
    # installed (a GPU machine with no package index, benchmarks/gpu_e2e.py)
    from agentune.evaluate import tracking

    params_doc = read_params() if Path("params.yaml").is_file() else {}
    params_doc = {**params_doc, "evaluate": cfg.model_dump(mode="json")}
    try:
        info = tracking.log_evaluation(cfg.mlflow, results, per_sample, dirs, artifacts, params_doc)
    except tracking.TrackingUnavailable as exc:
        msg = f"{exc}\n{cfg.metrics_out} and {cfg.report_dir}/eval.md are written and intact; nothing was sent to MLflow."
        MlflowRunRecord(status="unreachable", error=str(exc)).write(cfg.report_dir)
        if cfg.mlflow.required:
            raise StageError(msg + " (evaluate.mlflow.required is true)") from None
        log.warning("%s Set evaluate.mlflow.required=true to fail instead.", msg)
        return
    MlflowRunRecord(**info, status="logged").write(cfg.report_dir)
    log.info("MLflow: parent run %s at %s (%s)", info["parent_run_id"], info["tracking_uri"], info["run_url"])


def run(cfg: Config) -> None:
    """Evaluate every model on every suite, write metrics and the report, then log to MLflow."""
    base_record = BaseModelRecord.read(cfg.base_model)
    template = get_template(base_record.template)
    base_path = base_record.model_path(cfg.base_model)
    samples, scenarios = load_suites(cfg)
    models = (
        discover_models(cfg) if cfg.backend == "local" else [ModelUnderTest("endpoint", "merged", 0, None)]
    )
    if not models:
        raise StageError(f"nothing to evaluate: evaluate.models={cfg.models} found no model directories")
    log.info(
        "evaluating %s on %d prompts + %d scenarios",
        [m.name for m in models],
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
    parity = eval_report.gguf_parity(results, per_sample)
    if parity:
        meta["gguf_parity"] = parity
    eval_report.write_metrics(cfg.metrics_out, results, meta)
    eval_report.write_curve(cfg.curve_out, results, cfg.headline)
    eval_report.write_samples(report / "eval_samples.jsonl", per_sample)
    charts = eval_report.plot_charts(report, results, cfg.headline)
    print(eval_report.write_report(report / "eval.md", results, per_sample, charts, meta))

    if not cfg.mlflow.enabled:
        MlflowRunRecord(status="disabled").write(report)
        return
    dirs = {m.name: (m.dir or base_path) for m in models}
    log_to_mlflow(cfg, results, per_sample, dirs, [cfg.metrics_out, report / "eval.md", *charts])
