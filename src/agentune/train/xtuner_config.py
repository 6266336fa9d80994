"""Render the `train` params into a readable xtuner 0.2.0 (mmengine) config file.

The text is the template `xtuner_config.py.j2` beside this module: the layout of xtuner's own configs
(settings first, then model, data, optimizer, schedule, runtime), so it can be read, diffed and run by
hand with `xtuner train <file>`. Every value comes from the validated `train.Config`; nothing here is a
hidden default except what xtuner itself does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from agentune.train.config import Config

TEMPLATE = Path(__file__).with_name("xtuner_config.py.j2")


@dataclass(frozen=True)
class Target:
    """Where and how the config will run (resolved at run time, not params)."""

    model_path: Path  # the base model's weights/tokenizer (base_model.model_path)
    dataset: Path  # the converted dataset (save_to_disk folder)
    xtuner_template: str  # key into xtuner.utils.PROMPT_TEMPLATE
    cuda: bool  # a CUDA device is present
    #: set the tokenizer's bos_token to this (the template's BOS, None = none) when the tokenizer
    #: disagrees with the template; xtuner prepends tokenizer.bos_token_id to every sample
    bos_override: tuple[str | None] | None = None
    distributed: bool = False  # launched through torchrun (launcher.is_distributed), even as one process
    amp: str = "none"  # autocast dtype, `train.amp` resolved for this machine (none | float16 | bfloat16)


TORCH_DTYPES = {"float32": "torch.float32", "float16": "torch.float16", "bfloat16": "torch.bfloat16"}


def warmup_iters(cfg: Config) -> int:
    """Warmup length in iterations for an iteration-based run (0 = none).

    mmengine's LinearLR is recursive: over a window of one iteration it never leaves `start_factor`,
    and the cosine that follows decays from there, so the whole run would train at ~0 learning rate.
    A window of 2 gives one warmup step at the start factor, then the full learning rate.
    """
    w = int(cfg.warmup_ratio * (cfg.max_iters or 0))
    return 2 if w == 1 else w


def render(cfg: Config, target: Target) -> str:
    """The xtuner config text for these params on this target."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = repr  # a Python literal, as the config file needs it
    return env.get_template(TEMPLATE.name).render(
        cfg=cfg,
        target=target,
        q=cfg.quantization,
        lora=cfg.lora,
        amp=target.amp != "none",
        by_epoch=cfg.max_epochs is not None,
        warmup_iters=warmup_iters(cfg),
        system=cfg.evaluation.system_prompt(),
        torch_dtypes=TORCH_DTYPES,
    )
