"""The `convert` params section as a typed model (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agentune.core.config import StrictModel


class LeakCheckConfig(StrictModel):
    """Evaluation items checked against the training records before training (`evalsets.leak`)."""

    fixed_suites: list[Literal["scenarios", "bfcl"]] = ["scenarios", "bfcl"]  # a hit stops the stage
    threshold: float = Field(0.8, gt=0, le=1)  # Jaccard of word 3-gram shingles for a near-duplicate
    num_perm: int = Field(128, ge=16)  # MinHash permutations
    bfcl_cache_dir: Path = Path(".cache/bfcl")
    listed: int = Field(20, ge=0)  # hits listed (file:line) in metrics/data.json; all are counted


class Config(StrictModel):
    raw_dir: Path = Path("data/raw")
    base_model: Path = Path("models/base")
    out: Path = Path("data/converted")
    heldout_out: Path = Path("data/eval/heldout.jsonl")
    metrics_out: Path = Path("metrics/data.json")
    heldout_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    on_error: Literal["fail", "skip"] = "fail"
    max_line_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    token_stats_records: int = Field(2000, ge=0)  # records tokenized for the percentiles; 0 = skip
    leak_check: LeakCheckConfig = LeakCheckConfig()
