"""The `gguf` params section as a typed model (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agentune.core.config import StrictModel

#: `convert_hf_to_gguf.py --outtype` values (pure Python, no llama.cpp build needed)
ConvertType = Literal["f32", "f16", "bf16", "q8_0"]
#: `llama-quantize` types (llama.cpp's quantizer, from the f16 file)
QuantizeType = Literal["q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k"]


class OllamaConfig(StrictModel):
    gguf: str = "q8_0"  # which of the GGUF files the Modelfile's FROM names
    num_ctx: int = Field(2048, ge=256)
    temperature: float = Field(0.0, ge=0.0)  # greedy by default, as the model was evaluated


class Config(StrictModel):
    merged: Path = Path("models/merged")
    adapters: Path = Path("models/adapters")
    out: Path = Path("models/gguf")
    name: str = Field("agentune", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    types: list[ConvertType] = Field(default_factory=lambda: ["f16", "q8_0"])
    quantize: list[QuantizeType] = Field(default_factory=lambda: ["q4_k_m"])
    lora: bool = True
    lora_type: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    ollama: OllamaConfig = Field(default_factory=OllamaConfig)
    cache_dir: Path = Path(".cache/llama.cpp")
