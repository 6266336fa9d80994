"""Provenance and stops written into a GGUF's metadata, and read back.

llama.cpp's converter writes the model, its tokenizer and the chat template of the merged model's
`tokenizer_config.json`. This adds what it cannot know: the end-of-turn token the agent's template
ends a reply with (`tokenizer.ggml.eot_token_id`) and the pipeline's provenance under `agentune.*`
(base weights, training data fingerprint, checkpoint and iteration, chat template name, tool-result
convention), so `agentune serve --engine llama.cpp` needs the GGUF alone. The file is rewritten with
llama.cpp's own gguf-py (reader -> writer, tensors copied as they are), in a subprocess whose `gguf` is
the release's: the environment's `gguf` (transformers reads GGUF with it) may be another version.

    python -m agentune.gguf.metadata write SRC DST VALUES_JSON [EOT_ID]   # (with gguf-py first on the path)
    python -m agentune.gguf.metadata read PATH                            # the metadata as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PREFIX = "agentune."


def rewrite(src: Path, dst: Path, values: dict[str, Any], eot_id: int | None) -> None:
    """Copy `src` to `dst` with `values` (strings, ints, or JSON-able values stored as JSON text) under
    `agentune.<key>`, and `eot_id` as the end-of-turn token."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    new = {PREFIX + k: v for k, v in values.items()}
    for field in reader.fields.values():
        if (
            field.name == gguf.Keys.General.ARCHITECTURE
            or field.name.startswith("GGUF.")
            or field.name in new
        ):
            continue
        if field.name == gguf.Keys.Tokenizer.EOT_ID and eot_id is not None:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    if eot_id is not None:
        writer.add_key_value(gguf.Keys.Tokenizer.EOT_ID, eot_id, gguf.GGUFValueType.UINT32)
    for key, value in new.items():
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            value = json.dumps(value, sort_keys=True)
        vtype = gguf.GGUFValueType.STRING if isinstance(value, str) else gguf.GGUFValueType.INT64
        writer.add_key_value(key, value, vtype)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()


def read(path: Path) -> dict[str, Any]:
    """A GGUF's metadata as plain values (the vocabulary's arrays left out)."""
    import gguf

    reader = gguf.GGUFReader(path)
    out: dict[str, Any] = {}
    for field in reader.fields.values():
        is_vocab = field.name.startswith("tokenizer.ggml.") and field.types[0] == gguf.GGUFValueType.ARRAY
        if field.name.startswith("GGUF.") or is_vocab:
            continue
        value = field.contents()
        if field.name.startswith(PREFIX) and isinstance(value, str) and value[:1] in "[{":
            value = json.loads(value)
        out[field.name] = value
    return out


def main(argv: list[str]) -> None:
    if argv[0] == "write":
        rewrite(Path(argv[1]), Path(argv[2]), json.loads(argv[3]), int(argv[4]) if len(argv) > 4 else None)
    elif argv[0] == "read":
        print(json.dumps(read(Path(argv[1])), default=str))
    else:
        raise SystemExit(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
