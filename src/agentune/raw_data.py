"""Stage raw_data: (being built)."""

from __future__ import annotations

from agentune.config import StrictModel


class Config(StrictModel):
    model_config = {"extra": "allow"}


def run(cfg: Config) -> None:
    raise NotImplementedError("raw_data")
