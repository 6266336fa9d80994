"""Lean LoRA merge: base safetensors shard by shard, tensor by tensor, into W + scale * B @ A.

Peak memory stays near the largest single tensor plus the adapter, whatever the model size: tensors are
read from each base shard with plain file reads (no memory map, no model object) and written straight
into the output shard, whose header is computed first from the shapes and the output dtype. The delta is
computed in float32 and the result cast once to the requested dtype. The output keeps the base's
sharding and tensor names and writes `model.safetensors.index.json` for sharded models.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm import tqdm

from agentune.core.errors import StageError

INDEX = "model.safetensors.index.json"

# safetensors dtype tags <-> torch dtypes (names, so that importing this module stays light)
_ST_TO_TORCH = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
_TORCH_TO_ST = {v: k for k, v in _ST_TO_TORCH.items()}
_FLOAT_TAGS = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors tag
    shape: tuple[int, ...]
    start: int  # absolute file offset of the data
    end: int


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Tensor table and metadata of a safetensors file, without reading the data."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        size = path.stat().st_size
    except (OSError, struct.error, ValueError) as exc:
        raise StageError(f"{path}: not a readable safetensors file ({exc})") from None
    meta = header.pop("__metadata__", {}) or {}
    table = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        table[name] = TensorInfo(info["dtype"], tuple(info["shape"]), 8 + n + start, 8 + n + end)
        if 8 + n + end > size:
            raise StageError(f"{path}: truncated (tensor {name} ends past the end of the file)")
    return table, meta


def read_tensor(fh, info: TensorInfo):
    """One tensor read into its own memory (no mmap)."""
    if info.dtype not in _ST_TO_TORCH:
        raise StageError(f"unsupported safetensors dtype {info.dtype}")
    buf = bytearray(info.end - info.start)
    fh.seek(info.start)
    if fh.readinto(buf) != len(buf):
        raise StageError(f"{fh.name}: truncated while reading a tensor")
    dtype = getattr(torch, _ST_TO_TORCH[info.dtype])
    if not buf:
        return torch.empty(info.shape, dtype=dtype)
    return torch.frombuffer(buf, dtype=dtype).reshape(info.shape)


def write_streaming(
    path: Path,
    specs: list[tuple[str, str, tuple[int, ...]]],
    produce: Callable[[str], Any],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write a safetensors file whose tensors (name, dtype tag, shape) are produced one at a time."""
    sizes = {
        "F64": 8,
        "F32": 4,
        "F16": 2,
        "BF16": 2,
        "I64": 8,
        "I32": 4,
        "I16": 2,
        "I8": 1,
        "U8": 1,
        "BOOL": 1,
    }
    header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, tag, shape in specs:
        n = sizes[tag]
        for d in shape:
            n *= d
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for name, tag, shape in specs:
            tensor = produce(name)
            if _TORCH_TO_ST[str(tensor.dtype).removeprefix("torch.")] != tag or tuple(tensor.shape) != shape:
                raise RuntimeError(
                    f"{name}: produced {tensor.dtype} {tuple(tensor.shape)}, expected {tag} {shape}"
                )
            if tensor.numel():
                fh.write(tensor.contiguous().view(-1).view(torch.uint8).numpy().data)
        fh.flush()


def base_shards(base: Path) -> tuple[list[Path], dict | None]:
    """The base model's safetensors files (in index order) and its index, if sharded."""
    index_path = base / INDEX
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        files = sorted(set(index["weight_map"].values()))
        return [base / f for f in files], index
    single = base / "model.safetensors"
    if single.is_file():
        return [single], None
    raise StageError(
        f"{base}: no model.safetensors or {INDEX}; the lean merge needs safetensors weights "
        "(convert .bin weights with transformers' save_pretrained(safe_serialization=True))"
    )


@dataclass
class LoraDelta:
    a: Any  # [r, in]
    b: Any  # [out, r]
    scale: float


def adapter_deltas(adapter_dir: Path) -> dict[str, LoraDelta]:
    """`<module>.weight` -> (A, B, scale) for every LoRA target in a PEFT adapter dir."""
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if cfg.get("bias", "none") != "none":
        raise StageError(
            f"{adapter_dir}: LoRA bias={cfg['bias']!r} is not supported by the merge (only 'none')"
        )
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise StageError(f"{adapter_dir}: per-module rank/alpha patterns are not supported by the merge")
    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    deltas: dict[str, LoraDelta] = {}
    prefix = "base_model.model."
    for key, a in state.items():
        if not key.endswith(".lora_A.weight"):
            if not key.endswith(".lora_B.weight"):
                raise StageError(f"{adapter_dir}: unsupported adapter tensor {key!r} (only lora_A/lora_B)")
            continue
        module = key[: -len(".lora_A.weight")]
        b = state.get(f"{module}.lora_B.weight")
        if b is None:
            raise StageError(f"{adapter_dir}: {module}.lora_B.weight is missing")
        target = module.removeprefix(prefix) + ".weight"
        deltas[target] = LoraDelta(a=a, b=b, scale=scale)
    return deltas


def check_against_base(
    deltas: dict[str, LoraDelta], tables: dict[str, TensorInfo], adapter_dir: Path
) -> None:
    """Every target exists in the base with the shape [out, in] that B @ A produces."""
    problems = []
    for name, d in deltas.items():
        info = tables.get(name)
        expected = (int(d.b.shape[0]), int(d.a.shape[1]))
        if info is None:
            problems.append(f"{name}: not in the base model")
        elif info.shape != expected:
            problems.append(f"{name}: base shape {list(info.shape)}, adapter gives {list(expected)}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise StageError(
            f"{adapter_dir}: the adapter does not fit the base model (different architecture?): {shown}. "
            "Export with the base model the run was trained on."
        )


def merge_weights(base: Path, adapter_dir: Path, out_dir: Path, dtype: str, progress: bool = True) -> dict:
    """Write the merged weights of `base` + adapter into `out_dir`; return a summary."""
    out_tag = _TORCH_TO_ST[dtype]
    shards, index = base_shards(base)
    deltas = adapter_deltas(adapter_dir)
    headers = {p: read_header(p) for p in shards}
    all_tables = {name: info for table, _ in headers.values() for name, info in table.items()}
    check_against_base(deltas, all_tables, adapter_dir)

    total = sum(len(t) for t, _ in headers.values())
    bar = tqdm(total=total, desc="merge", unit="tensor", disable=not progress)
    weight_map: dict[str, str] = {}
    total_size = 0
    merged = 0
    for shard in shards:
        table, _ = headers[shard]
        names = sorted(table, key=lambda k: table[k].start)
        specs = []
        for name in names:
            tag = out_tag if table[name].dtype in _FLOAT_TAGS else table[name].dtype
            specs.append((name, tag, table[name].shape))
            weight_map[name] = shard.name
        with open(shard, "rb") as fh:

            def produce(name: str, fh=fh, table=table) -> Any:
                nonlocal merged
                t = read_tensor(fh, table[name])
                d = deltas.get(name)
                if d is not None:
                    delta = (d.b.to(torch.float32) @ d.a.to(torch.float32)) * d.scale
                    t = t.to(torch.float32) + delta
                    merged += 1
                if t.is_floating_point():
                    t = t.to(getattr(torch, dtype))
                bar.update(1)
                return t

            write_streaming(out_dir / shard.name, specs, produce, metadata={"format": "pt"})
        total_size += (out_dir / shard.name).stat().st_size
    bar.close()
    if index is not None:
        new_index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
        (out_dir / INDEX).write_text(json.dumps(new_index, indent=2) + "\n", encoding="utf-8")
    return {"tensors": total, "merged_modules": merged, "shards": [p.name for p in shards]}


def iter_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """(name, tensor) for every weight of a safetensors model dir, one at a time (for checks/tests)."""
    for shard in base_shards(model_dir)[0]:
        table, _ = read_header(shard)
        with open(shard, "rb") as fh:
            for name in sorted(table, key=lambda k: table[k].start):
                yield name, read_tensor(fh, table[name])
