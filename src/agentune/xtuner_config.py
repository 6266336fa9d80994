"""Render the `train` params into a readable xtuner 0.2.0 (mmengine) config file.

The output has the layout of xtuner's own configs (settings first, then model, data, optimizer,
schedule, runtime), so it can be read, diffed and run by hand with `xtuner train <file>`.
Every value comes from the validated `train.Config`; nothing here is a hidden default except what
xtuner itself does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentune.train import Config


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
    world_size: int = 1  # processes in all (nnodes * nproc_per_node)


TORCH_DTYPES = {"float32": "torch.float32", "float16": "torch.float16", "bfloat16": "torch.bfloat16"}


def warmup_iters(cfg: Config) -> int:
    """Warmup length in iterations for an iteration-based run (0 = none).

    mmengine's LinearLR is recursive: over a window of one iteration it never leaves `start_factor`,
    and the cosine that follows decays from there, so the whole run would train at ~0 learning rate.
    A window of 2 gives one warmup step at the start factor, then the full learning rate.
    """
    w = int(cfg.warmup_ratio * (cfg.max_iters or 0))
    return 2 if w == 1 else w


def _schedule(cfg: Config) -> str:
    """param_scheduler: LinearLR warmup (skipped when it would be 0 iterations) then cosine to 0."""
    if cfg.max_epochs is not None:
        # xtuner's own form: epochs converted to iterations once the dataloader length is known.
        warm = (
            "    dict(\n"
            "        type=LinearLR,\n"
            "        start_factor=warmup_start_factor,\n"
            "        by_epoch=True,\n"
            "        begin=0,\n"
            "        end=warmup_ratio * max_epochs,\n"
            "        convert_to_iter_based=True,\n"
            "    ),\n"
        )
        cosine = (
            "    dict(\n"
            "        type=CosineAnnealingLR,\n"
            "        eta_min=0.0,\n"
            "        by_epoch=True,\n"
            f"        begin={'warmup_ratio * max_epochs' if cfg.warmup_ratio > 0 else '0'},\n"
            "        end=max_epochs,\n"
            "        convert_to_iter_based=True,\n"
            "    ),\n"
        )
        return "param_scheduler = [\n" + (warm if cfg.warmup_ratio > 0 else "") + cosine + "]\n"
    w = warmup_iters(cfg)
    warm = "    dict(type=LinearLR, start_factor=warmup_start_factor, by_epoch=False, begin=0, end=warmup_iters),\n"
    cosine = (
        "    dict(type=CosineAnnealingLR, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),\n"
    )
    return "param_scheduler = [\n" + (warm if w > 0 else "") + cosine + "]\n"


def render(cfg: Config, target: Target) -> str:
    """The xtuner config text for these params on this target."""
    q = cfg.quantization
    lora = cfg.lora
    amp = cfg.amp != "none"
    distributed_cpu = target.world_size > 1 and not target.cuda
    targets = repr(None if lora.target_modules is None else list(lora.target_modules))

    out: list[str] = []
    add = out.append
    add('"""xtuner config rendered by `agentune train` from params.yaml (section `train`). Do not edit:')
    add("change params.yaml and rerun the stage. Runnable by hand: xtuner train <this file> --work-dir DIR.")
    add('"""')
    add("import torch")
    add("from datasets import load_from_disk")
    add("from mmengine.dataset import DefaultSampler")
    add("from mmengine.hooks import (")
    add("    CheckpointHook,")
    add("    DistSamplerSeedHook,")
    add("    IterTimerHook,")
    add("    LoggerHook,")
    add("    ParamSchedulerHook,")
    add(")")
    add("from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, LinearLR, OptimWrapper")
    add("from mmengine.visualization import LocalVisBackend, Visualizer")
    add("from peft import LoraConfig")
    add("from torch.optim import AdamW")
    add("from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig")
    add("")
    add("from xtuner.dataset import process_hf_dataset")
    add("from xtuner.dataset.collate_fns import default_collate_fn")
    add("from xtuner.dataset.map_fns import openai_map_fn, template_map_fn_factory")
    add("from xtuner.engine.hooks import DatasetInfoHook, EvaluateChatHook, ThroughputHook")
    add("from xtuner.engine.runner import TrainLoop")
    add("from xtuner.model import SupervisedFinetune")
    add("from xtuner.utils import PROMPT_TEMPLATE")
    add("")
    add("#" * 71)
    add("#                          PART 1  Settings                           #")
    add("#" * 71)
    add(f"pretrained_model_name_or_path = {str(target.model_path)!r}")
    add(f"trust_remote_code = {cfg.trust_remote_code!r}")
    add(f"torch_dtype = {TORCH_DTYPES[cfg.torch_dtype]}")
    add(f"use_activation_checkpointing = {cfg.activation_checkpointing!r}")
    add("")
    add(f"converted_path = {str(target.dataset)!r}")
    add(f"prompt_template = PROMPT_TEMPLATE.{target.xtuner_template}")
    add(f"max_length = {cfg.max_length}")
    add(f"pack_to_max_length = {cfg.pack_to_max_length!r}")
    add(f"shuffle_before_pack = {cfg.shuffle_before_pack!r}")
    add(f"map_num_proc = {cfg.map_num_proc}")
    add("")
    add(f"batch_size = {cfg.batch_size}  # per device")
    add(f"accumulative_counts = {cfg.accumulative_counts}")
    add(f"dataloader_num_workers = {cfg.dataloader_num_workers}")
    if cfg.max_epochs is not None:
        add(f"max_epochs = {cfg.max_epochs!r}")
    else:
        add(f"max_iters = {cfg.max_iters}")
    add("optim_type = AdamW")
    add(f"lr = {cfg.lr!r}")
    add(f"betas = {tuple(cfg.betas)!r}")
    add(f"weight_decay = {cfg.weight_decay!r}")
    add(f"max_norm = {cfg.max_norm!r}  # grad clip")
    add(f"warmup_ratio = {cfg.warmup_ratio!r}")
    add(f"warmup_start_factor = {cfg.warmup_start_factor!r}")
    if cfg.max_epochs is None:
        add(f"warmup_iters = {warmup_iters(cfg)}")
    add("")
    add(f"save_steps = {cfg.save_steps}")
    add(f"save_total_limit = {cfg.keep}  # checkpoints kept (-1: all)")
    add(f"save_optimizer = {cfg.save_optimizer!r}  # optimizer + scheduler state, needed to resume")
    add(f"log_interval = {cfg.log_interval}")
    add(f"seed = {cfg.seed}")
    add("")
    add(f"evaluation_freq = {cfg.evaluation.every}")
    add(f"SYSTEM = {cfg.evaluation.system_prompt()!r}")
    add(f"evaluation_inputs = {list(cfg.evaluation.inputs)!r}")
    add("")
    add("#" * 71)
    add("#                      PART 2  Model & Tokenizer                      #")
    add("#" * 71)
    add("tokenizer = dict(")
    add("    type=AutoTokenizer.from_pretrained,")
    add("    pretrained_model_name_or_path=pretrained_model_name_or_path,")
    add("    trust_remote_code=trust_remote_code,")
    add('    padding_side="right",')
    if target.bos_override is not None:
        add(
            "    # the chat template's BOS (xtuner prepends bos_token to every sample); the tokenizer differs"
        )
        add(f"    bos_token={target.bos_override[0]!r},")
    add(")")
    add("")
    add("model = dict(")
    add("    type=SupervisedFinetune,")
    add("    use_varlen_attn=False,")
    add("    use_activation_checkpointing=use_activation_checkpointing,")
    add("    llm=dict(")
    add("        type=AutoModelForCausalLM.from_pretrained,")
    add("        pretrained_model_name_or_path=pretrained_model_name_or_path,")
    add("        trust_remote_code=trust_remote_code,")
    add("        torch_dtype=torch_dtype,")
    if q.enabled:
        add("        quantization_config=dict(")
        add("            type=BitsAndBytesConfig,")
        add("            load_in_4bit=True,")
        add("            load_in_8bit=False,")
        add(f"            llm_int8_threshold={q.llm_int8_threshold!r},")
        add("            llm_int8_has_fp16_weight=False,")
        add(f"            bnb_4bit_compute_dtype={TORCH_DTYPES[q.compute_dtype]},")
        add(f"            bnb_4bit_use_double_quant={q.double_quant!r},")
        add(f"            bnb_4bit_quant_type={q.quant_type!r},")
        add("        ),")
    add("    ),")
    add("    lora=dict(")
    add("        type=LoraConfig,")
    add(f"        r={lora.r},")
    add(f"        lora_alpha={lora.alpha},")
    add(f"        lora_dropout={lora.dropout!r},")
    add(f"        bias={lora.bias!r},")
    if lora.target_modules is None:
        add("        # None: every linear layer except lm_head (xtuner's find_all_linear_names)")
    add(f"        target_modules={targets},")
    add('        task_type="CAUSAL_LM",')
    add("    ),")
    add(")")
    add("")
    add("#" * 71)
    add("#                      PART 3  Dataset & Dataloader                   #")
    add("#" * 71)
    add("train_dataset = dict(")
    add("    type=process_hf_dataset,")
    add("    # in memory: datasets would otherwise write cache-*.arrow files into the DVC-tracked folder")
    add("    dataset=dict(type=load_from_disk, dataset_path=converted_path, keep_in_memory=True),")
    add("    tokenizer=tokenizer,")
    add("    max_length=max_length,")
    add("    dataset_map_fn=openai_map_fn,")
    add("    template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),")
    add("    remove_unused_columns=True,")
    add("    shuffle_before_pack=shuffle_before_pack,")
    add("    pack_to_max_length=pack_to_max_length,")
    add("    use_varlen_attn=False,")
    add("    map_num_proc=map_num_proc,")
    add(")")
    add("")
    add("train_dataloader = dict(")
    add("    batch_size=batch_size,")
    add("    num_workers=dataloader_num_workers,")
    add("    dataset=train_dataset,")
    add("    sampler=dict(type=DefaultSampler, shuffle=True),")
    add("    collate_fn=dict(type=default_collate_fn, use_varlen_attn=False),")
    add(")")
    add("")
    add("#" * 71)
    add("#                    PART 4  Scheduler & Optimizer                    #")
    add("#" * 71)
    add("optim_wrapper = dict(")
    add(f"    type={'AmpOptimWrapper' if amp else 'OptimWrapper'},")
    add("    optimizer=dict(type=optim_type, lr=lr, betas=betas, weight_decay=weight_decay),")
    add("    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),")
    add("    accumulative_counts=accumulative_counts,")
    if amp:
        add('    loss_scale="dynamic",')
        add(f"    dtype={cfg.amp!r},")
    add(")")
    add("")
    add(_schedule(cfg))
    if cfg.max_epochs is not None:
        add("train_cfg = dict(type=TrainLoop, max_epochs=max_epochs)")
    else:
        add("train_cfg = dict(type=TrainLoop, max_iters=max_iters)")
    add("")
    add("#" * 71)
    add("#                           PART 5  Runtime                           #")
    add("#" * 71)
    add("custom_hooks = [dict(type=DatasetInfoHook, tokenizer=tokenizer), dict(type=ThroughputHook)]")
    add("if evaluation_freq > 0 and evaluation_inputs:")
    add("    custom_hooks.append(")
    add("        dict(")
    add("            type=EvaluateChatHook,")
    add("            tokenizer=tokenizer,")
    add("            every_n_iters=evaluation_freq,")
    add("            evaluation_inputs=evaluation_inputs,")
    add("            system=SYSTEM,")
    add("            prompt_template=prompt_template,")
    add("        )")
    add("    )")
    add("")
    add("default_hooks = dict(")
    add("    timer=dict(type=IterTimerHook),")
    add("    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=log_interval),")
    add("    param_scheduler=dict(type=ParamSchedulerHook),")
    add("    checkpoint=dict(")
    add("        type=CheckpointHook,")
    add("        by_epoch=False,")
    add("        interval=save_steps,")
    add("        max_keep_ckpts=save_total_limit,")
    add("        save_optimizer=save_optimizer,")
    add("        save_param_scheduler=save_optimizer,")
    add("    ),")
    add("    sampler_seed=dict(type=DistSamplerSeedHook),")
    add(")")
    add("")
    add("env_cfg = dict(")
    add("    cudnn_benchmark=False,")
    add('    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),')
    add(f"    dist_cfg=dict(backend={'nccl' if target.cuda else 'gloo'!r}),")
    add(")")
    if distributed_cpu:
        add("# CPU processes over gloo: DDP must not be given device_ids for CPU modules.")
        add("model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)")
    add("")
    add("# scalars (loss, lr, tokens/s per step) to <work_dir>/<timestamp>/vis_data/scalars.json")
    add("visualizer = dict(type=Visualizer, vis_backends=[dict(type=LocalVisBackend)])")
    add('log_level = "INFO"')
    add("load_from = None")
    add("resume = False")
    add("randomness = dict(seed=seed, deterministic=False)")
    add("log_processor = dict(by_epoch=False)")
    return "\n".join(out) + "\n"
