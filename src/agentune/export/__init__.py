"""Stage export: every checkpoint -> PEFT adapter; one merged into the base -> a model that stops.

Reads the xtuner work dir of `train` (models/checkpoints): each kept `iter_<N>.pth` becomes
models/adapters/iter_<N>/ (adapter_config.json + adapter_model.safetensors + agentune_adapter.json,
the keys and tensors `xtuner convert pth_to_hf` writes, in the trained precision). The checkpoint
chosen by `merge_checkpoint` (`last` or `iter_N`) is merged into the base model shard by shard
(`dtype`, bfloat16 by default) -> models/merged/: safetensors shards, tokenizer with chat template,
and a generation_config.json that ends generation on the chat template's end-of-turn tokens, so a
plain `model.generate(**inputs)` stops at the end of the assistant turn.
Both outputs are written atomically: an interrupted export leaves the previous ones (or none).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from transformers import AutoTokenizer, GenerationConfig

from agentune.core.artifacts import (
    XTUNER_CONFIG_FILE,
    AdapterRecord,
    AdaptersIndex,
    BaseModelRecord,
    Checkpoint,
    MergedRecord,
    TrainRecord,
    list_checkpoints,
)
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, sha256_file, sha256_tree
from agentune.export import adapters, merge
from agentune.export.config import Config
from agentune.protocol.chat_template import chat_template, xtuner_template
from agentune.protocol.react import ToolResultStyle
from agentune.protocol.templates import get_template

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]


def check_base_hash(
    train_prov: TrainRecord, base_prov: BaseModelRecord, work_dir: Path, base_dir: Path
) -> str | None:
    """The base the run was trained on must be the base we merge into (same weights hash)."""
    if train_prov.status != "complete":
        log.warning(
            "%s: training status is %r, not 'complete'", TrainRecord.file(work_dir), train_prov.status
        )
    trained_on = train_prov.base_weights_sha256
    current = base_prov.weights_sha256
    if trained_on is None:
        log.warning(
            "%s records no base-model weights hash; only shapes are checked", TrainRecord.file(work_dir)
        )
    elif current != trained_on:
        raise StageError(
            f"base model mismatch: the checkpoints in {work_dir} were trained on a base with weights "
            f"sha256 {trained_on}, but {base_dir} has {current}. Export with the base the run used, or "
            "retrain on this one."
        )
    return trained_on


def choose(checkpoints: list[Checkpoint], name: str, work_dir: Path) -> Checkpoint:
    """The checkpoint named by `merge_checkpoint` (`last` = highest iteration)."""
    if not checkpoints:
        raise StageError(f"{work_dir}: no iter_<N>.pth checkpoints; run `agentune train` first")
    if name == "last":
        return checkpoints[-1]
    for c in checkpoints:
        if c.name == name:
            return c
    raise StageError(
        f"export.merge_checkpoint = {name!r}: no {name}.pth in {work_dir}; "
        f"available: {', '.join(c.name for c in checkpoints)} (or 'last')"
    )


def checkpoint_sha256(path: Path) -> str:
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def export_adapters(
    cfg: Config, checkpoints: list[Checkpoint], base_path: Path, train_prov: TrainRecord, out: Path
) -> list[AdapterRecord]:
    """Write one PEFT adapter per checkpoint under `out`; return their provenance records."""
    tables = {}
    for shard in merge.base_shards(base_path)[0]:
        tables.update(merge.read_header(shard)[0])
    records = []
    for ckpt in checkpoints:
        lora, cfg_text = adapters.load_checkpoint(ckpt)
        settings = (adapters.lora_settings_from_cfg_text(cfg_text) if cfg_text else None) or (
            adapters.lora_settings_from_work_dir(cfg.checkpoints)
        )
        if settings is None:
            raise StageError(
                f"{ckpt.path}: no LoRA settings (lora_alpha) found in the checkpoint's meta.cfg or in "
                f"{cfg.checkpoints / XTUNER_CONFIG_FILE}"
            )
        state = adapters.hf_state_dict(lora, ckpt.path)
        lora_config = adapters.build_lora_config(settings, state, base_path, ckpt.path)
        target = out / ckpt.name
        adapters.write_adapter(target, state, lora_config)
        merge.check_against_base(merge.adapter_deltas(target), tables, ckpt.path)
        record = AdapterRecord(
            **{
                "checkpoint": ckpt.name,
                "iteration": ckpt.iteration,
                "checkpoint_path": str(ckpt.path),
                "checkpoint_sha256": checkpoint_sha256(ckpt.path),
                "adapter_sha256": sha256_tree(target, "*.safetensors"),
                "base_weights_sha256": train_prov.base_weights_sha256,
                "dataset_fingerprint": train_prov.dataset_fingerprint,
                "tool_result": train_prov.tool_result,
                "lora": {
                    "r": lora_config.r,
                    "lora_alpha": lora_config.lora_alpha,
                    "target_modules": sorted(lora_config.target_modules),
                },
                "train": train_prov.dump(),
                "export_config": cfg.model_dump(mode="json"),
            }
        )
        record.write(target)
        records.append(record)
        log.info("%s -> %s", ckpt.path, target)
    return records


def stop_token_ids(tokenizer, template) -> list[int]:
    """The tokenizer's eos and every stop token of the chat template, as ids (no duplicates)."""
    ids: list[int] = []
    for tok in [tokenizer.eos_token, *template.stop_tokens]:
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if tid is None or (tid == tokenizer.unk_token_id and tok != tokenizer.unk_token):
            raise StageError(
                f"stop token {tok!r} of the {template.name!r} chat template is not in the base tokenizer's "
                "vocabulary; the base model's recorded template does not match its tokenizer"
            )
        if tid not in ids:
            ids.append(tid)
    return ids


def write_model_files(base_path: Path, out: Path, template, dtype: str, tool_result: dict | None) -> dict:
    """config.json (dtype updated), tokenizer + the agent's chat template, generation_config.json that stops.

    The chat template renders `tools` and tool results as training did (`protocol.chat_template`), so
    engines that prompt with it (vLLM, SGLang, TGI, LMDeploy, llama.cpp) prompt the model right."""
    config = json.loads((base_path / "config.json").read_text(encoding="utf-8"))
    config["torch_dtype"] = dtype
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    tokenizer = AutoTokenizer.from_pretrained(str(base_path), trust_remote_code=False)
    style = ToolResultStyle.load(tool_result)
    tokenizer.chat_template = chat_template(xtuner_template(template), template.bos, style)
    # `generate(**tokenizer(text))` must work: causal LMs take no token_type_ids
    tokenizer.model_input_names = tokenizer.init_kwargs["model_input_names"] = ["input_ids", "attention_mask"]
    tokenizer.save_pretrained(str(out))

    eos = stop_token_ids(tokenizer, template)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    gen = GenerationConfig(
        bos_token_id=config.get("bos_token_id"), eos_token_id=eos, pad_token_id=pad, do_sample=False
    )
    gen.save_pretrained(str(out))
    return {
        "eos_token_id": eos,
        "pad_token_id": pad,
        "stop_tokens": [tokenizer.convert_ids_to_tokens(i) for i in eos],
    }


def remove_stale_temp(final: Path) -> None:
    """Temp/old siblings that a killed export left behind (atomic_dir's `.<name>.tmp-*`)."""
    if final.parent.is_dir():
        for stale in [*final.parent.glob(f".{final.name}.tmp-*"), *final.parent.glob(f".{final.name}.old-*")]:
            log.info("removing %s left by an interrupted export", stale)
            shutil.rmtree(stale, ignore_errors=True)


def run(cfg: Config) -> None:
    """Export every checkpoint as an adapter and merge the chosen one into the base."""
    base_prov = BaseModelRecord.read(cfg.base_model)
    base_path = base_prov.model_path(cfg.base_model)
    try:
        template = get_template(base_prov.template)
    except ValueError as exc:
        raise StageError(f"{BaseModelRecord.file(cfg.base_model)}: {exc}") from None
    checkpoints = list_checkpoints(cfg.checkpoints)
    chosen = choose(checkpoints, cfg.merge_checkpoint, cfg.checkpoints)
    train_prov = TrainRecord.read(cfg.checkpoints)
    check_base_hash(train_prov, base_prov, cfg.checkpoints, cfg.base_model)

    remove_stale_temp(cfg.adapters_out)
    remove_stale_temp(cfg.merged_out)
    with atomic_dir(cfg.adapters_out) as adapters_tmp:
        records = export_adapters(cfg, checkpoints, base_path, train_prov, adapters_tmp)
        AdaptersIndex(adapters=[r.checkpoint for r in records], config=cfg.model_dump(mode="json")).write(
            adapters_tmp
        )
        record = next(r for r in records if r.checkpoint == chosen.name)
        with atomic_dir(cfg.merged_out) as merged_tmp:
            summary = merge.merge_weights(base_path, adapters_tmp / chosen.name, merged_tmp, cfg.dtype)
            stops = write_model_files(base_path, merged_tmp, template, cfg.dtype, train_prov.tool_result)
            MergedRecord(
                **{
                    "checkpoint": chosen.name,
                    "iteration": chosen.iteration,
                    "checkpoint_sha256": record.checkpoint_sha256,
                    "adapter_sha256": record.adapter_sha256,
                    "base_weights_sha256": base_prov.weights_sha256,
                    "dataset_fingerprint": record.dataset_fingerprint,
                    "template": template.name,
                    "tool_result": train_prov.tool_result,
                    "dtype": cfg.dtype,
                    "weights_sha256": sha256_tree(merged_tmp, "*.safetensors"),
                    "merge": summary,
                    **stops,
                    "config": cfg.model_dump(mode="json"),
                }
            ).write(merged_tmp)
    log.info(
        "%d adapter(s) -> %s; %s merged (%s) -> %s",
        len(records),
        cfg.adapters_out,
        chosen.name,
        cfg.dtype,
        cfg.merged_out,
    )
