"""Stage gguf: the merged model as GGUF files for llama.cpp, Ollama and LM Studio, with an Ollama Modelfile.

Reads models/merged (and the adapter it was merged from, in models/adapters) and writes models/gguf/:
- `<name>-<type>.gguf` for each of `types`, made by llama.cpp's own `convert_hf_to_gguf.py` with the
  gguf-py of the same release (pinned in `agentune.gguf.release`), and for each of `quantize` by
  llama.cpp's quantizer from the f16 file (needs the llama.cpp runtime: `make llama-cpp`; skipped with a
  warning, and recorded, without it);
- `<name>-lora-<checkpoint>-<lora_type>.gguf`: the adapter alone (`convert_lora_to_gguf.py`), for
  `llama-cli -m <base>.gguf --lora ...`;
- `Modelfile`: FROM the `ollama.gguf` file, a TEMPLATE in Ollama's syntax that renders turns as training
  did, the stops, default parameters (`ollama create agentune -f models/gguf/Modelfile`);
- `agentune_gguf.json`: each file's type, size and sha256, and what it was made from.
Each GGUF carries the merged model's chat template, the end-of-turn stop and the provenance
(`agentune.*` keys). The folder is written atomically.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agentune.core.artifacts import GgufRecord, MergedRecord
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, sha256_file
from agentune.gguf import modelfile, release, tokenizer
from agentune.gguf.config import Config
from agentune.inference.llama_cpp import import_llama_cpp
from agentune.protocol.templates import get_template

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]


def provenance(record: MergedRecord, merged: Path) -> dict:
    """The `agentune.*` metadata of every file: what the merged model was made from."""
    return {
        "template": record.template,
        "tool_result": record.tool_result,
        "checkpoint": record.checkpoint,
        "iteration": record.iteration,
        "base_weights_sha256": getattr(record, "base_weights_sha256", None),
        "dataset_fingerprint": getattr(record, "dataset_fingerprint", None),
        "merged_weights_sha256": getattr(record, "weights_sha256", None),
        "merged_dir": str(merged),
    }


def convert_model(tools: Path, merged: Path, outtype: str, dst: Path, meta: dict, eot_id: int | None) -> None:
    """`convert_hf_to_gguf.py --outtype` into a temp file, then the metadata rewrite into `dst`."""
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=dst.parent) as tmp:
        raw = Path(tmp) / dst.name
        source = tokenizer.converter_view(merged, Path(tmp))
        release.run_script(
            tools, "convert_hf_to_gguf.py", [str(source), "--outfile", str(raw), "--outtype", outtype]
        )
        release.write_metadata(tools, raw, dst, meta, eot_id)


@contextlib.contextmanager
def native_stderr(into: Path) -> Iterator[None]:
    """Send what C code writes to file descriptor 2 (llama.cpp's log) into `into` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(into, "wb") as fh:
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantize(src: Path, dst: Path, kind: str) -> None:
    """llama.cpp's quantizer (`llama_model_quantize`, what `llama-quantize` runs) from `src` (f16).

    Its per-tensor log (one line per tensor whose rows do not fit the k-quant block of 256, which falls
    back to another type) becomes one summary line; a failure shows the log's last lines."""
    llama_cpp = import_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
    out = dst.with_name(f".{dst.name}.log")
    with native_stderr(out):
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    lines = out.read_text(encoding="utf-8", errors="replace").splitlines()
    out.unlink()
    if status != 0:
        tail = "\n".join(lines[-20:])
        raise StageError(f"llama.cpp's quantizer failed ({status}) on {src} -> {kind}:\n{tail}")
    summary = next((line.split("WARNING: ", 1)[1] for line in lines if "required fallback" in line), None)
    if summary:
        log.info("%s: %s (rows not a multiple of 256 keep a 32-block type)", kind, summary)


def llama_cpp_runtime() -> str | None:
    """Why the llama.cpp runtime cannot be used here (None when it can)."""
    try:
        import_llama_cpp()
    except StageError as exc:
        return str(exc)
    return None


def eot_token_id(record: MergedRecord, merged: Path) -> int:
    """The id of the token that ends the assistant's turn, from the stop tokens and ids export recorded."""
    stop = get_template(record.template or "chatml").stop_tokens[0]
    tokens, ids = getattr(record, "stop_tokens", None), getattr(record, "eos_token_id", None)
    if not tokens or not ids or stop not in tokens:
        raise StageError(
            f"{MergedRecord.file(merged)}: records no id for the end-of-turn token {stop!r} (stop_tokens, "
            "eos_token_id); run `agentune export` again"
        )
    return int(ids[tokens.index(stop)])


def run(cfg: Config) -> None:
    """Convert the merged model (and its adapter) to GGUF and write the Ollama Modelfile."""
    record = MergedRecord.read(cfg.merged)
    if cfg.ollama.gguf not in [*cfg.types, *cfg.quantize]:
        raise StageError(
            f"gguf.ollama.gguf = {cfg.ollama.gguf!r} is none of gguf.types {cfg.types} or gguf.quantize "
            f"{cfg.quantize}: name one of them"
        )
    tools = release.converters(cfg.cache_dir)
    meta = provenance(record, cfg.merged)
    eot = eot_token_id(record, cfg.merged)
    files: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    with atomic_dir(cfg.out) as tmp:
        paths = {}
        for t in cfg.types:
            paths[t] = tmp / f"{cfg.name}-{t}.gguf"
            convert_model(tools, cfg.merged, t, paths[t], {**meta, "type": t}, eot)
        why_not = llama_cpp_runtime() if cfg.quantize else None
        for q in cfg.quantize:
            if why_not:
                skipped[q] = why_not
                log.warning("gguf.quantize %s skipped: %s", q, why_not)
                continue
            f16 = paths.get("f16") or tmp / f".{cfg.name}-f16.gguf"
            if not f16.exists():
                convert_model(tools, cfg.merged, "f16", f16, {**meta, "type": "f16"}, eot)
            paths[q] = tmp / f"{cfg.name}-{q}.gguf"
            quantize(f16, paths[q], q)
        for hidden in tmp.glob(".*.gguf"):
            hidden.unlink()
        if cfg.lora and record.checkpoint:
            adapter = cfg.adapters / record.checkpoint
            if not (adapter / "adapter_config.json").is_file():
                raise StageError(
                    f"{adapter}: the adapter of the merged checkpoint is missing; run `agentune export`"
                )
            lora = tmp / f"{cfg.name}-lora-{record.checkpoint}-{cfg.lora_type}.gguf"
            with tempfile.TemporaryDirectory(prefix=".lora-", dir=tmp) as work:
                raw = Path(work) / lora.name
                release.run_script(tools, "convert_lora_to_gguf.py", [str(adapter), "--base", str(cfg.merged),
                                   "--outfile", str(raw), "--outtype", cfg.lora_type])  # fmt: skip
                release.write_metadata(tools, raw, lora, {**meta, "type": f"lora-{cfg.lora_type}"}, None)
            paths["lora"] = lora
        for kind, path in paths.items():
            files[path.name] = {"type": kind, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        if cfg.ollama.gguf in paths:
            (tmp / "Modelfile").write_text(
                modelfile.modelfile(paths[cfg.ollama.gguf].name, record, cfg.ollama), encoding="utf-8"
            )
        GgufRecord(
            files=files,
            skipped=skipped,
            llama_cpp={"package": release.PACKAGE, "version": release.VERSION, "sha256": release.SHA256},
            template=record.template,
            tool_result=record.tool_result,
            eot_token_id=eot,
            source=meta,
            config=cfg.model_dump(mode="json"),
        ).write(tmp)
    log.info("%d GGUF file(s) -> %s: %s", len(files), cfg.out, ", ".join(files))
    if skipped:
        log.warning("not made here: %s", json.dumps(skipped))
