"""What `train` checks before it launches: the base model, the converted dataset, the device, and the
fingerprint that decides whether an interrupted run may be resumed."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from datasets import load_from_disk

from agentune.core.artifacts import BaseModelRecord, ConvertRecord
from agentune.core.errors import StageError
from agentune.core.hardware import cpu_bf16
from agentune.core.io import combine_hashes, sha256_file
from agentune.protocol.templates import get_template
from agentune.train.config import Config

log = logging.getLogger(__name__)


def check_inputs(cfg: Config) -> dict:
    """Validate base model and dataset; return what the run record needs about them."""
    info = BaseModelRecord.read(cfg.base_model)
    path = info.model_path(cfg.base_model)
    if not (path / "config.json").is_file():
        raise StageError(f"{path}: no config.json; the base model is incomplete, rerun `agentune base_model`")
    try:
        template = get_template(info.template)
    except ValueError as exc:
        raise StageError(f"{BaseModelRecord.file(cfg.base_model)}: {exc}") from None
    n_rows = check_dataset(cfg.dataset)
    convert_record = ConvertRecord.read_if_present(cfg.dataset)
    return {
        "base_model": {
            "dir": str(cfg.base_model),
            "path": str(path),
            "source": info.source,
            "template": template.name,
            "xtuner_template": template.xtuner,
            "weights_sha256": info.weights_sha256,
        },
        "dataset": {
            "path": str(cfg.dataset),
            "rows": n_rows,
            "fingerprint": dataset_fingerprint(cfg.dataset),
            "tool_result": convert_record.tool_result if convert_record else None,
        },
    }


def check_dataset(path: Path) -> int:
    """The converted dataset must load with `datasets.load_from_disk` and have id + messages."""
    if not path.exists():
        raise StageError(f"{path}: converted dataset not found; run `agentune convert` first")

    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for a broken folder
        raise StageError(
            f"{path}: cannot be read as a converted dataset ({type(exc).__name__}: {exc}); "
            "rerun `agentune convert`"
        ) from None
    if hasattr(ds, "keys"):  # a DatasetDict
        raise StageError(f"{path}: holds a DatasetDict ({list(ds.keys())}); expected one Dataset")
    missing = {"messages"} - set(ds.column_names)
    if missing:
        raise StageError(f"{path}: missing column(s) {sorted(missing)}; found {ds.column_names}")
    if len(ds) == 0:
        raise StageError(f"{path}: the dataset has no rows")
    return len(ds)


def dataset_fingerprint(path: Path) -> str:
    """The convert stage's recorded fingerprint if present, else a hash of the folder."""
    record = ConvertRecord.file(path)
    if record.is_file():
        return sha256_file(record)
    files = (q for q in path.rglob("*") if q.is_file() and not q.name.startswith("cache-"))
    return combine_hashes({q.relative_to(path).as_posix(): sha256_file(q) for q in files})


def check_device(cfg: Config, cuda: bool) -> None:
    """Reject settings that need a GPU when none is present, naming the params to change."""
    if cuda:
        return
    problems = []
    if cfg.quantization.enabled:
        problems.append("train.quantization.enabled=true (4-bit bitsandbytes needs CUDA): set it to false")
    if cfg.amp == "float16":
        problems.append("train.amp=float16: CPU autocast computes in bfloat16 only; set auto or bfloat16")
    if cfg.torch_dtype == "float16":
        problems.append("train.torch_dtype=float16: CPU training is float32 or bfloat16")
    if cfg.torch_dtype == "bfloat16" and not (bf16 := cpu_bf16()).native:
        problems.append(
            f"train.torch_dtype=bfloat16: {bf16.reason}; set float32 (train.amp: auto uses bf16 where it pays)"
        )
    if cfg.launch.deepspeed != "none":
        problems.append(f"train.launch.deepspeed={cfg.launch.deepspeed}: DeepSpeed needs CUDA; set none")
    if problems:
        raise StageError("no CUDA device, but the params need one:\n  - " + "\n  - ".join(problems))


def resolve_amp(cfg: Config, cuda: bool) -> str:
    """The autocast dtype training runs with: `none`, `float16` or `bfloat16` (`train.amp: auto` decided here).

    auto: on a GPU bf16 where it is supported, else fp16; on a CPU bf16 autocast where the CPU has
    native bf16 (LoRA weights and optimizer state stay fp32), else plain fp32, with a log line saying why.
    """
    if cfg.amp != "auto":
        if cfg.amp == "bfloat16" and not cuda and not (bf16 := cpu_bf16()).native:
            log.warning(
                "train.amp=bfloat16 on this CPU: %s (train.amp: auto would train in fp32)", bf16.reason
            )
        return cfg.amp
    if cuda:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    bf16 = cpu_bf16()
    log.info("train.amp: auto -> %s (%s)", "bfloat16 autocast" if bf16.native else "fp32", bf16.reason)
    return "bfloat16" if bf16.native else "none"


def bos_override(model_path: Path, template: str) -> tuple[str | None] | None:
    """(template BOS,) when the tokenizer's bos_token differs from the chat template's, else None."""
    want = get_template(template).bos
    cfg_file = model_path / "tokenizer_config.json"
    have = json.loads(cfg_file.read_text(encoding="utf-8")).get("bos_token") if cfg_file.is_file() else None
    if isinstance(have, dict):  # AddedToken form
        have = have.get("content")
    return None if have == want else (want,)


def fingerprint(cfg: Config, inputs: dict) -> str:
    """What must be equal for an interrupted run to be resumed: training params, base weights, data."""
    params = cfg.model_dump(mode="json", exclude={"out", "loss_curve", "launch", "log_interval"})
    params["deepspeed"] = cfg.launch.deepspeed
    key = {
        "params": params,
        "base_weights": inputs["base_model"]["weights_sha256"],
        "dataset": inputs["dataset"]["fingerprint"],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
