"""The `train` params section as typed models (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agentune.core.config import StrictModel
from agentune.protocol import react

DEEPSPEED = ("none", "zero1", "zero2", "zero2_offload", "zero3", "zero3_offload")


class LoraParams(StrictModel):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    bias: Literal["none", "all", "lora_only"] = "none"
    #: module names to adapt; null = every linear layer except lm_head (what xtuner does)
    target_modules: list[str] | None = None


class QuantParams(StrictModel):
    """4-bit QLoRA via bitsandbytes (CUDA only)."""

    enabled: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    llm_int8_threshold: float = 6.0


class LaunchParams(StrictModel):
    """Processes and nodes; env NPROC_PER_NODE, NNODES, NODE_RANK, ADDR, PORT override these."""

    nproc_per_node: int = Field(1, ge=1)
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    master_addr: str = "127.0.0.1"
    master_port: int = Field(29500, ge=1024, le=65535)
    #: none or one of xtuner's DeepSpeed configs (zero1, zero2, zero2_offload, zero3, zero3_offload)
    #: or a path to a DeepSpeed JSON file
    deepspeed: str = "none"
    #: auto: plain python for one process on one node, torchrun otherwise (xtuner's rule); torchrun:
    #: always torchrun, e.g. one process on a one-GPU machine through the launch path of many GPUs
    launcher: Literal["auto", "torchrun"] = "auto"


class EvalParams(StrictModel):
    """xtuner's in-training chat evaluation (EvaluateChatHook); every: 0 turns it off."""

    every: int = Field(0, ge=0)
    system: str = ""  # system prompt; ignored when `tools` is given
    tools: list[dict] = []  # tools (JSON-schema style): system = react.render_system(tools)
    inputs: list[str] = []

    @field_validator("tools")
    @classmethod
    def _tools(cls, tools: list[dict]) -> list[dict]:
        for tool in tools:
            try:
                react.lagent_tool(tool)
            except react.ToolSpecError as exc:
                raise ValueError(str(exc)) from None
        return tools

    def system_prompt(self) -> str:
        """The system prompt the hook sends: the ReAct prompt for `tools`, else `system`."""
        return react.render_system(self.tools) if self.tools else self.system


class Config(StrictModel):
    base_model: Path = Path("models/base")
    dataset: Path = Path("data/converted")
    out: Path = Path("models/checkpoints")
    loss_curve: Path = Path("metrics/train_loss.tsv")

    lora: LoraParams = LoraParams()
    quantization: QuantParams = QuantParams()
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    #: autocast dtype (xtuner's AmpOptimWrapper); auto: bf16 where the GPU or CPU has it, else fp16 on
    #: a GPU and fp32 on a CPU (agentune.train.inputs.resolve_amp)
    amp: Literal["auto", "none", "float16", "bfloat16"] = "auto"
    activation_checkpointing: bool = False
    trust_remote_code: bool = False

    max_length: int = Field(1536, ge=16)
    pack_to_max_length: bool = False
    shuffle_before_pack: bool = True
    map_num_proc: int = Field(2, ge=1)

    batch_size: int = Field(1, ge=1)
    accumulative_counts: int = Field(1, ge=1)
    dataloader_num_workers: int = Field(0, ge=0)
    max_iters: int | None = Field(200, ge=1)  # exactly one of max_iters / max_epochs
    max_epochs: int | float | None = Field(None, gt=0)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    max_norm: float = Field(1.0, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    warmup_start_factor: float = Field(1e-5, gt=0, le=1)

    save_steps: int = Field(100, ge=1)
    keep: int = Field(-1, ge=-1)  # checkpoints kept; -1 = all
    save_optimizer: bool = True  # needed to resume
    log_interval: int = Field(1, ge=1)
    seed: int = 0

    evaluation: EvalParams = EvalParams()
    launch: LaunchParams = LaunchParams()

    @model_validator(mode="after")
    def _check(self) -> Config:
        problems = []
        if (self.max_iters is None) == (self.max_epochs is None):
            problems.append("set exactly one of max_iters / max_epochs (the other to null)")
        if self.keep == 0:
            problems.append("keep must be -1 (all) or >= 1")
        ds = self.launch.deepspeed
        if ds not in DEEPSPEED and not ds.endswith(".json"):
            problems.append(f"launch.deepspeed {ds!r}: use one of {', '.join(DEEPSPEED)} or a .json path")
        if problems:
            raise ValueError("; ".join(problems))
        return self
