"""xtuner checkpoint -> PEFT LoRA adapter (what `xtuner convert pth_to_hf` writes, as safetensors).

A checkpoint of the train stage is `iter_<N>.pth`: a file (mmengine's dict with `state_dict`, `meta`,
`message_hub`, ...) or, with DeepSpeed ZeRO, a directory. Only `state_dict` (the LoRA weights, keys
`llm.base_model.model.<module>.lora_A.default.weight`) and `meta.cfg` (the rendered xtuner config of
the run that wrote it) are used.

Reading a `.pth` never runs code from the file: it is loaded with `torch.load(weights_only=True)`, and
the non-tensor objects mmengine stores beside the weights (HistoryBuffer, numpy scalars, `getattr`
reductions in the message hub) are mapped to an inert placeholder instead of being imported or called.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from safetensors.torch import save_file

from agentune.core.artifacts import XTUNER_CONFIG_FILE, Checkpoint
from agentune.core.errors import StageError

PREFIX = "llm."
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class _Inert:
    """Placeholder for any non-tensor object in a checkpoint: accepts its arguments, keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _load_pth(path: Path) -> dict:
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        with torch.serialization.safe_globals([(_Inert, name) for name in unsafe]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated zip, bad pickle, not a torch file
        raise StageError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}). The file is corrupt or "
            "incomplete (interrupted training or copy?): delete it and re-run `agentune train`, or "
            "point export at another checkpoint."
        ) from None
    if not isinstance(obj, dict):
        raise StageError(f"{path}: expected an mmengine checkpoint dict, got {type(obj).__name__}")
    return obj


def _load_zero(path: Path) -> dict:
    try:
        from xtuner.utils.zero_to_any_dtype import get_state_dict_from_zero_checkpoint
    except ImportError as exc:
        raise StageError(
            f"{path}: a DeepSpeed ZeRO checkpoint directory; reading it needs deepspeed ({exc})"
        ) from None
    try:
        state = get_state_dict_from_zero_checkpoint(str(path.parent), path.name)
    except Exception as exc:
        raise StageError(
            f"{path}: cannot read DeepSpeed ZeRO checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    return {"state_dict": state, "meta": {}}


def load_checkpoint(ckpt: Checkpoint) -> tuple[dict[str, Any], str | None]:
    """The LoRA state dict (xtuner key names) and the run's rendered config text, if recorded."""
    obj = _load_zero(ckpt.path) if ckpt.path.is_dir() else _load_pth(ckpt.path)
    state = obj.get("state_dict", obj)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    lora = {k: v for k, v in state.items() if "lora_" in k}
    if not lora:
        raise StageError(
            f"{ckpt.path}: holds no LoRA weights (keys like 'llm.base_model.model...lora_A.default.weight'); "
            "export supports LoRA/QLoRA runs only"
        )
    cfg_text = meta.get("cfg") if isinstance(meta.get("cfg"), str) else None
    return lora, cfg_text


def lora_settings_from_cfg_text(text: str) -> dict[str, Any] | None:
    """`model.lora` and `model.llm.pretrained_model_name_or_path` from a pretty-printed mmengine config.

    The text is parsed, never executed: only literal keyword values of `model = dict(...)` are read.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None

    def literal_kwargs(call: ast.AST) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(call, ast.Call):
            for kw in call.keywords:
                if kw.arg is None:
                    continue
                if isinstance(kw.value, ast.Call):
                    out[kw.arg] = literal_kwargs(kw.value)
                else:
                    try:
                        out[kw.arg] = ast.literal_eval(kw.value)
                    except ValueError:
                        out[kw.arg] = None
        return out

    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "model" for t in node.targets
        ):
            model = literal_kwargs(node.value)
            if isinstance(model.get("lora"), dict):
                lora = dict(model["lora"])
                lora.pop("type", None)
                llm = model.get("llm") or {}
                lora["base_model_name_or_path"] = llm.get("pretrained_model_name_or_path")
                return lora
    return None


def lora_settings_from_work_dir(work_dir: Path) -> dict[str, Any] | None:
    """Fallback for checkpoints without `meta.cfg`: the rendered xtuner config in the work dir."""
    path = work_dir / XTUNER_CONFIG_FILE
    if not path.is_file():
        return None
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    lora = dict(cfg.model.get("lora") or {})
    lora.pop("type", None)
    lora["base_model_name_or_path"] = cfg.model.llm.get("pretrained_model_name_or_path")
    return lora or None


def hf_state_dict(lora: dict[str, Any], source: Path) -> dict[str, Any]:
    """xtuner keys -> PEFT adapter keys: drop `llm.` and the adapter name (`.default`)."""
    out = {}
    for key, tensor in lora.items():
        if not key.startswith(PREFIX):
            raise StageError(f"{source}: unexpected key {key!r} (expected the prefix {PREFIX!r})")
        name = key[len(PREFIX) :].replace(".default.", ".")
        out[name] = tensor.detach().contiguous().clone()
    return out


def target_modules(state: dict[str, Any]) -> tuple[list[str], int]:
    """The LoRA target module names (last path component) and the rank, read from the weights."""
    names, ranks = set(), set()
    for key, tensor in state.items():
        m = re.match(r"^(.*)\.lora_A\.weight$", key)
        if m:
            names.add(m.group(1).rsplit(".", 1)[-1])
            ranks.add(int(tensor.shape[0]))
    if len(ranks) != 1:
        raise StageError(f"LoRA weights with ranks {sorted(ranks)}: per-module ranks are not supported")
    return sorted(names), ranks.pop()


def build_lora_config(settings: dict[str, Any], state: dict[str, Any], base_path: Path, source: Path):
    """PEFT LoraConfig from the run's settings, checked against the weights (rank, modules)."""
    modules, rank = target_modules(state)
    r = settings.get("r")
    if r is not None and int(r) != rank:
        raise StageError(f"{source}: the run's config says r={r} but the LoRA weights have rank {rank}")
    if settings.get("lora_alpha") is None:
        raise StageError(f"{source}: the run's config has no lora_alpha; cannot scale the adapter")
    return LoraConfig(
        r=rank,
        lora_alpha=settings["lora_alpha"],
        lora_dropout=float(settings.get("lora_dropout") or 0.0),
        bias=settings.get("bias") or "none",
        target_modules=modules,
        task_type=settings.get("task_type") or "CAUSAL_LM",
        inference_mode=True,
        use_rslora=bool(settings.get("use_rslora") or False),
        base_model_name_or_path=str(base_path),
    )


def write_adapter(out_dir: Path, state: dict[str, Any], lora_config) -> None:
    """adapter_config.json + adapter_model.safetensors (PEFT layout)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lora_config.save_pretrained(str(out_dir))
    save_file(state, str(out_dir / ADAPTER_WEIGHTS), metadata={"format": "pt"})
