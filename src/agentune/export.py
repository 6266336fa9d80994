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
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from agentune.config import StrictModel
from agentune.errors import StageError

log = logging.getLogger(__name__)

ADAPTER_PROVENANCE = "agentune_adapter.json"
ADAPTERS_INDEX = "agentune_adapters.json"
MERGED_PROVENANCE = "agentune_merged.json"
TRAIN_PROVENANCE = "agentune_train.json"


class Config(StrictModel):
    base_model: Path = Path("models/base")
    checkpoints: Path = Path("models/checkpoints")
    adapters_out: Path = Path("models/adapters")
    merged_out: Path = Path("models/merged")
    merge_checkpoint: str = Field("last", pattern=r"^(last|iter_\d+)$")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


def _find(obj: Any, keys: tuple[str, ...]) -> Any:
    """First value under any of `keys`, searched depth-first through nested dicts."""
    if isinstance(obj, dict):
        for k in keys:
            if obj.get(k) not in (None, ""):
                return obj[k]
        for v in obj.values():
            found = _find(v, keys)
            if found is not None:
                return found
    return None


def read_train_provenance(work_dir: Path) -> dict:
    """models/checkpoints/agentune_train.json, with a clear error when missing."""
    from agentune.io import read_json

    path = work_dir / TRAIN_PROVENANCE
    if not path.is_file():
        raise StageError(
            f"{path}: missing; {work_dir} is not the output of `agentune train` (run `dvc repro train`)"
        )
    return read_json(path)


def trained_base_hash(train_prov: dict) -> str | None:
    """Weights hash of the base the run trained on (`base_model.weights_sha256` in agentune_train.json)."""
    recorded = (train_prov.get("base_model") or {}).get("weights_sha256")
    return recorded or _find(train_prov, ("base_weights_sha256", "base_model_weights_sha256"))


def dataset_fingerprint(train_prov: dict) -> str | None:
    """Fingerprint of the converted dataset the run trained on (`dataset.fingerprint`)."""
    recorded = (train_prov.get("dataset") or {}).get("fingerprint")
    return recorded or _find(train_prov, ("dataset_fingerprint",))


def check_base_hash(train_prov: dict, base_prov: dict, work_dir: Path, base_dir: Path) -> str | None:
    """The base the run was trained on must be the base we merge into (same weights hash)."""
    if train_prov.get("status") not in (None, "complete"):
        log.warning(
            "%s: training status is %r, not 'complete'", work_dir / TRAIN_PROVENANCE, train_prov["status"]
        )
    trained_on = trained_base_hash(train_prov)
    current = base_prov.get("weights_sha256")
    if trained_on is None:
        log.warning(
            "%s records no base-model weights hash; only shapes are checked", work_dir / TRAIN_PROVENANCE
        )
    elif current != trained_on:
        raise StageError(
            f"base model mismatch: the checkpoints in {work_dir} were trained on a base with weights "
            f"sha256 {trained_on}, but {base_dir} has {current}. Export with the base the run used, or "
            "retrain on this one."
        )
    return trained_on


def choose(checkpoints: list, name: str, work_dir: Path):
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
    from agentune.io import sha256_file, sha256_tree

    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def export_adapters(
    cfg: Config, checkpoints: list, base_path: Path, train_prov: dict, out: Path
) -> list[dict]:
    """Write one PEFT adapter per checkpoint under `out`; return their provenance records."""
    from agentune import adapters, merge
    from agentune.io import sha256_tree, write_json

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
                f"{cfg.checkpoints / 'xtuner_config.py'}"
            )
        state = adapters.hf_state_dict(lora, ckpt.path)
        lora_config = adapters.build_lora_config(settings, state, base_path, ckpt.path)
        target = out / ckpt.name
        adapters.write_adapter(target, state, lora_config)
        merge.check_against_base(merge.adapter_deltas(target), tables, ckpt.path)
        record = {
            "checkpoint": ckpt.name,
            "iteration": ckpt.iteration,
            "checkpoint_path": str(ckpt.path),
            "checkpoint_sha256": checkpoint_sha256(ckpt.path),
            "adapter_sha256": sha256_tree(target, "*.safetensors"),
            "base_weights_sha256": trained_base_hash(train_prov),
            "dataset_fingerprint": dataset_fingerprint(train_prov),
            "lora": {
                "r": lora_config.r,
                "lora_alpha": lora_config.lora_alpha,
                "target_modules": sorted(lora_config.target_modules),
            },
            "train": train_prov,
            "export_config": cfg.model_dump(mode="json"),
        }
        write_json(target / ADAPTER_PROVENANCE, record)
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


def write_model_files(base_path: Path, out: Path, template, dtype: str) -> dict:
    """config.json (dtype updated), tokenizer + chat template, generation_config.json that stops."""
    from transformers import AutoTokenizer, GenerationConfig

    config = json.loads((base_path / "config.json").read_text(encoding="utf-8"))
    config["torch_dtype"] = dtype
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    tokenizer = AutoTokenizer.from_pretrained(str(base_path), trust_remote_code=False)
    if not tokenizer.chat_template:
        tokenizer.chat_template = template.jinja
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
    import shutil

    if final.parent.is_dir():
        for stale in [*final.parent.glob(f".{final.name}.tmp-*"), *final.parent.glob(f".{final.name}.old-*")]:
            log.info("removing %s left by an interrupted export", stale)
            shutil.rmtree(stale, ignore_errors=True)


def run(cfg: Config) -> None:
    """Export every checkpoint as an adapter and merge the chosen one into the base."""
    from agentune import adapters, merge
    from agentune.base_model import model_path, read_provenance
    from agentune.chat_templates import get_template
    from agentune.io import atomic_dir, sha256_tree, write_json

    base_prov = read_provenance(cfg.base_model)
    base_path = model_path(cfg.base_model)
    try:
        template = get_template(base_prov.get("template", ""))
    except ValueError as exc:
        raise StageError(f"{cfg.base_model / 'agentune_base.json'}: {exc}") from None
    checkpoints = adapters.list_checkpoints(cfg.checkpoints)
    chosen = choose(checkpoints, cfg.merge_checkpoint, cfg.checkpoints)
    train_prov = read_train_provenance(cfg.checkpoints)
    check_base_hash(train_prov, base_prov, cfg.checkpoints, cfg.base_model)

    remove_stale_temp(cfg.adapters_out)
    remove_stale_temp(cfg.merged_out)
    with atomic_dir(cfg.adapters_out) as adapters_tmp:
        records = export_adapters(cfg, checkpoints, base_path, train_prov, adapters_tmp)
        write_json(
            adapters_tmp / ADAPTERS_INDEX,
            {"adapters": [r["checkpoint"] for r in records], "config": cfg.model_dump(mode="json")},
        )
        record = next(r for r in records if r["checkpoint"] == chosen.name)
        with atomic_dir(cfg.merged_out) as merged_tmp:
            summary = merge.merge_weights(base_path, adapters_tmp / chosen.name, merged_tmp, cfg.dtype)
            stops = write_model_files(base_path, merged_tmp, template, cfg.dtype)
            write_json(
                merged_tmp / MERGED_PROVENANCE,
                {
                    "checkpoint": chosen.name,
                    "iteration": chosen.iteration,
                    "checkpoint_sha256": record["checkpoint_sha256"],
                    "adapter_sha256": record["adapter_sha256"],
                    "base_weights_sha256": base_prov.get("weights_sha256"),
                    "dataset_fingerprint": record["dataset_fingerprint"],
                    "template": template.name,
                    "dtype": cfg.dtype,
                    "weights_sha256": sha256_tree(merged_tmp, "*.safetensors"),
                    "merge": summary,
                    **stops,
                    "config": cfg.model_dump(mode="json"),
                },
            )
    log.info(
        "%d adapter(s) -> %s; %s merged (%s) -> %s",
        len(records),
        cfg.adapters_out,
        chosen.name,
        cfg.dtype,
        cfg.merged_out,
    )
