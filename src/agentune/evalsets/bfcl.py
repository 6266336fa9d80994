"""BFCL data from the `bfcl-eval` wheel: pinned download, hash check, reading, spec conversion.

The wheel is fetched with `pip download --no-deps` (never installed: it pins heavy dependencies) into a
cache folder, its sha256 is checked against the pin below, and the JSON Lines files are read from the
zip. The pin lives here, in code, so `convert`'s leak check and `evaluate` read the same release (and
DVC reruns both when it changes).
BFCL function specs (types "dict", "float", "tuple", "any", ...) are converted to the JSON-schema tools
the ReAct protocol renders.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentune.core import wheels
from agentune.core.errors import StageError

log = logging.getLogger(__name__)

#: the bfcl-eval release every suite reads (PyPI wheel), pinned by sha256
VERSION = "2026.3.23"
SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
#: the categories `evaluate` draws from (and `convert` checks for leaks into training)
CATEGORIES = ("simple_python", "irrelevance")

DATA = "bfcl_eval/data"
# BFCL type names -> JSON-schema types
TYPE_MAP = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "double": "number",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "string": "string",
    "str": "string",
    "any": "string",
    "char": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
}


def fetch_wheel(cache_dir: str | Path) -> Path:
    """The pinned bfcl-eval wheel in `cache_dir`, downloaded (no deps, not installed) if missing."""
    return wheels.fetch_wheel("bfcl-eval", VERSION, SHA256, cache_dir, "agentune.evalsets.bfcl.SHA256")


def read_jsonl_member(wheel: Path, member: str) -> list[dict[str, Any]]:
    """Records of one JSON Lines file inside the wheel; a bad line names the file and line number."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            text = zf.read(member).decode("utf-8")
    except KeyError:
        raise StageError(f"{wheel}: has no {member}; is agentune.evalsets.bfcl.VERSION right?") from None
    return parse_jsonl(text, f"{wheel.name}:{member}")


def parse_jsonl(text: str, where: str) -> list[dict[str, Any]]:
    """Parse JSON Lines text, raising StageError naming `where` and the line on a malformed line."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StageError(
                f"{where}:{lineno}: not valid JSON ({exc.msg}); fix or remove the line"
            ) from None
        if not isinstance(rec, dict):
            raise StageError(f"{where}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        out.append(rec)
    return out


def convert_schema(node: dict[str, Any]) -> dict[str, Any]:
    """One BFCL parameter schema -> JSON schema (recursing into properties and items)."""
    out = {k: v for k, v in node.items() if k not in ("type", "properties", "items")}
    btype = str(node.get("type", "string"))
    out["type"] = TYPE_MAP.get(btype, "string")
    if "properties" in node:
        out["properties"] = {k: convert_schema(v) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = convert_schema(node["items"])
    return out


def convert_function(fn: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function spec -> a protocol tool `{name, description, parameters}`."""
    params = convert_schema(fn.get("parameters") or {"type": "dict", "properties": {}})
    params.setdefault("properties", {})
    params.setdefault("required", [])
    return {"name": fn["name"], "description": fn.get("description", ""), "parameters": params}


def pick(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """A deterministic, evenly spread selection of `n` records (all if n >= len)."""
    if n >= len(records):
        return list(records)
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def load_category(
    wheel: Path, category: str, n: int, keep: Callable[[str], bool] = lambda _id: True
) -> list[dict[str, Any]]:
    """`n` questions of a BFCL category (of those whose id `keep` accepts), each with its converted
    tools and (if any) ground truth."""
    questions = [q for q in read_jsonl_member(wheel, f"{DATA}/BFCL_v4_{category}.json") if keep(q["id"])]
    answers: dict[str, Any] = {}
    if category != "irrelevance":
        for rec in read_jsonl_member(wheel, f"{DATA}/possible_answer/BFCL_v4_{category}.json"):
            answers[rec["id"]] = rec["ground_truth"]
    out = []
    for q in pick(questions, n):
        turns = q.get("question") or [[]]
        out.append(
            {
                "id": q["id"],
                "messages": list(turns[0]),
                "tools": [convert_function(f) for f in q.get("function", [])],
                "ground_truth": answers.get(q["id"]),
            }
        )
    return out
