"""The `export` params section as a typed model (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agentune.core.config import StrictModel


class Config(StrictModel):
    base_model: Path = Path("models/base")
    checkpoints: Path = Path("models/checkpoints")
    adapters_out: Path = Path("models/adapters")
    merged_out: Path = Path("models/merged")
    merge_checkpoint: str = Field("last", pattern=r"^(last|iter_\d+)$")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
