"""The `raw_data` params section as typed models (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from agentune.core.config import StrictModel


class SampleConfig(StrictModel):
    seed: int = 0
    n_records: int = Field(4000, ge=7, le=1_000_000)


class LocalConfig(StrictModel):
    path: Path = Path("/dataset/Agent-FLAN/data")


class HubConfig(StrictModel):
    repo_id: str = "internlm/Agent-FLAN"
    revision: str | None = None  # a commit sha (40 hex) or tag; required for source=hub
    subdir: str = "data"


class Config(StrictModel):
    source: Literal["sample", "local", "hub"] = "sample"
    out: Path = Path("data/raw/agent-flan")
    sample: SampleConfig = SampleConfig()
    local: LocalConfig = LocalConfig()
    hub: HubConfig = HubConfig()

    @model_validator(mode="after")
    def _pinned(self) -> Config:
        if self.source == "hub" and not self.hub.revision:
            raise ValueError(
                "source=hub needs raw_data.hub.revision (a commit sha or tag) so the data is pinned"
            )
        if self.source == "hub" and self.hub.revision in ("main", "master"):
            raise ValueError(
                f"raw_data.hub.revision={self.hub.revision!r} is a branch; pin a commit sha or tag"
            )
        return self
