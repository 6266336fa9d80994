"""Function-calling metrics on parsed replies (see docs/evaluate.md for the definitions).

A sample's expectation is either a call (`Expected(name, args)` where each argument maps to its list of
allowed values, BFCL style; `""` among them means the argument may be omitted) or "no call"
(`name=None`). `score_sample` returns one verdict per metric (1.0/0.0, a fraction for `args_em`, or None
when the metric does not apply to the sample); `aggregate` turns verdicts into rates with their `n`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agentune.protocol.react import ParsedReply

METRICS = (
    "format_valid",
    "tool_name_acc",
    "args_json_valid",
    "args_em",
    "call_em",
    "no_hallucinated_response",
    "stopped",
    "irrelevance_no_call",
    "e2e_success",
)


@dataclass
class Expected:
    """What the reply should be: a call to `name` with `args` (param -> allowed values), or no call."""

    name: str | None
    args: dict[str, list[Any]] = field(default_factory=dict)
    spec: dict[str, Any] | None = None  # the tool's JSON-schema spec, for type checks and required params
    irrelevant: bool = False  # no call expected because no offered tool fits (irrelevance_no_call)

    @classmethod
    def call(cls, name: str, args: dict[str, Any], spec: dict[str, Any] | None = None) -> Expected:
        """An expected call whose arguments each have exactly one allowed value."""
        return cls(name=name, args={k: [v] for k, v in args.items()}, spec=spec)


def standardize(text: str) -> str:
    """BFCL string normalisation: drop spaces and `,./-_*^`, lower-case, single -> double quotes."""
    return re.sub(r"[ ,./\-_*^]", "", text).lower().replace("'", '"')


def value_matches(value: Any, allowed: list[Any]) -> bool:
    """Whether `value` is among `allowed` after normalisation (strings standardized, numbers by value)."""
    return any(_same(value, a) for a in allowed if a != "")


def _same(value: Any, ref: Any) -> bool:
    if isinstance(ref, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(ref, bool) and value == ref
    if isinstance(ref, int | float) and isinstance(value, int | float):
        return float(value) == float(ref)
    if isinstance(ref, str) and isinstance(value, str):
        return standardize(value) == standardize(ref)
    if isinstance(ref, list) and isinstance(value, list | tuple):
        return len(ref) == len(value) and all(_same(v, r) for v, r in zip(value, ref, strict=True))
    if isinstance(ref, dict) and isinstance(value, dict):
        # BFCL nested dicts: each key maps to a list of allowed values
        for key, opts in ref.items():
            opts = opts if isinstance(opts, list) else [opts]
            if key not in value:
                if "" not in opts:
                    return False
            elif not value_matches(value[key], opts):
                return False
        return set(value) <= set(ref)
    return False


_JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def type_ok(value: Any, schema: dict[str, Any] | None) -> bool:
    """JSON-schema type check (ints accepted for numbers, bools never count as numbers)."""
    if not schema or "type" not in schema:
        return True
    types = _JSON_TYPES.get(schema["type"])
    if types is None:
        return True
    if isinstance(value, bool) and schema["type"] != "boolean":
        return False
    if not isinstance(value, types):
        return False
    if schema["type"] == "array" and "items" in schema:
        return all(type_ok(v, schema["items"]) for v in value)
    return True


def call_exact(reply: ParsedReply, exp: Expected) -> tuple[bool, str]:
    """BFCL AST-style strict check: name, required present, no unknown params, types, allowed values."""
    if reply.kind != "call" or reply.args is None:
        return False, "no parseable call"
    if reply.action != exp.name:
        return False, f"wrong function {reply.action!r}"
    props = (exp.spec or {}).get("parameters", {}).get("properties", {})
    required = (exp.spec or {}).get("parameters", {}).get("required", [])
    for name in required:
        if name not in reply.args:
            return False, f"missing required parameter {name!r}"
    for name, value in reply.args.items():
        if name not in exp.args:
            return False, f"unexpected parameter {name!r}"
        if not type_ok(value, props.get(name)):
            return False, f"wrong type for {name!r}"
        if not value_matches(value, exp.args[name]):
            return False, f"wrong value for {name!r}: {value!r}"
    for name, allowed in exp.args.items():
        if name not in reply.args and "" not in allowed:
            return False, f"missing parameter {name!r}"
    return True, "ok"


def args_em(reply: ParsedReply, exp: Expected) -> float:
    """(name matches + each expected argument matching) / (number of expected arguments + 1)."""
    if reply.kind != "call":
        return 0.0
    name_ok = reply.action == exp.name
    args = reply.args or {}
    hits = 0
    for name, allowed in exp.args.items():
        if name in args:
            hits += value_matches(args[name], allowed)
        else:
            hits += "" in allowed
    return (int(name_ok) + hits) / (len(exp.args) + 1)


def score_sample(reply: ParsedReply, exp: Expected, stopped: bool) -> dict[str, float | None]:
    """One verdict per metric for one reply (None = the metric does not apply to this sample)."""
    made_call = reply.kind == "call"
    v: dict[str, float | None] = dict.fromkeys(METRICS)
    v["format_valid"] = float(reply.format_valid)
    v["stopped"] = float(stopped)
    v["no_hallucinated_response"] = float(not reply.hallucinated) if made_call else None
    if exp.name is None:
        if exp.irrelevant:
            v["irrelevance_no_call"] = float(not made_call)
    else:
        v["tool_name_acc"] = float(made_call and reply.action == exp.name)
        v["args_json_valid"] = float(made_call and reply.args is not None)
        v["args_em"] = args_em(reply, exp)
        v["call_em"] = float(call_exact(reply, exp)[0])
    return v


def aggregate(verdicts: list[dict[str, float | None]]) -> dict[str, float | int | None]:
    """Mean of each metric over the samples where it applies, with `<metric>_n` counts and `n`."""
    out: dict[str, float | int | None] = {"n": len(verdicts)}
    for m in METRICS:
        vals = [v[m] for v in verdicts if v.get(m) is not None]
        out[m] = round(sum(vals) / len(vals), 4) if vals else None
        out[f"{m}_n"] = len(vals)
    return out
