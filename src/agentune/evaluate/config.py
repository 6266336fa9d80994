"""The `evaluate` params section as typed models (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from agentune.core.config import StrictModel
from agentune.evaluate.scoring import METRICS

SUITES = ("heldout", "scenarios", "bfcl")


def _check_metric_names(names: list[str]) -> list[str]:
    for name in names:
        suite, _, metric = name.partition("/")
        suite = suite.split(":", 1)[0]  # heldout:<source>: one training source's held-out samples
        if suite not in SUITES + ("bfcl_simple_python", "bfcl_irrelevance") or metric not in METRICS:
            raise ValueError(
                f"{name!r}: expected <suite>/<metric>, suite one of heldout, heldout:<source>, scenarios, "
                f"bfcl_simple_python, bfcl_irrelevance; metric one of {', '.join(METRICS)}"
            )
    return names


class BfclConfig(StrictModel):  # the release is pinned in agentune.evalsets.bfcl
    cache_dir: Path = Path(".cache/bfcl")
    simple_python_n: int = Field(30, ge=0)
    irrelevance_n: int = Field(16, ge=0)


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
    data_metrics: Path = Path("metrics/data.json")  # convert's counts per source and kind, logged too

    @field_validator("champion_metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return _check_metric_names([v])[0]


class LlamaCppConfig(StrictModel):  # the `gguf` models, decoded by llama.cpp (`make llama-cpp`)
    n_ctx: int = Field(4096, ge=256)
    threads: int | None = Field(None, ge=1)  # None: every core this process may use


class Config(StrictModel):
    base_model: Path = Path("models/base")
    adapters: Path = Path("models/adapters")
    merged: Path = Path("models/merged")
    heldout: Path = Path("data/eval/heldout.jsonl")
    gguf: Path = Path("models/gguf")
    models: list[Literal["base", "checkpoints", "merged", "gguf"]] = ["base", "checkpoints", "merged"]
    suites: list[Literal["heldout", "scenarios", "bfcl"]] = list(SUITES)
    # suites run on the intermediate checkpoints (base and merged always run all of `suites`)
    checkpoint_suites: list[Literal["heldout", "scenarios", "bfcl"]] = ["heldout"]
    # all | dev (2/5) | test (3/5): disjoint parts of the held-out records and of each BFCL category, by
    # sha256 of the record / question id (choose settings on dev, report on test)
    split: Literal["all", "dev", "test"] = "all"
    heldout_n: int = Field(24, ge=1)
    scenario_max_turns: int = Field(8, ge=1)
    max_new_tokens: int = Field(160, ge=1)
    bfcl: BfclConfig = BfclConfig()
    backend: Literal["local", "endpoint"] = "local"
    local: LocalConfig = LocalConfig()
    endpoint: EndpointConfig = EndpointConfig()
    llama_cpp: LlamaCppConfig = LlamaCppConfig()
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
