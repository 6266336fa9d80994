"""One reader per source format: a parsed JSONL record -> (record id, protocol messages with `loss`).

- `agent-flan`: `{id, conversation: [{role, content, loss}]}`, already in the protocol; `loss` made
  explicit (assistant true unless the record says false; system and user false).
- `openai`: OpenAI's chat fine-tuning format (one object per line: `messages`, optional `tools` and
  `parallel_tool_calls`; an assistant's `tool_calls` with JSON-string `arguments`, `tool` messages with
  `tool_call_id`, `weight` 0/1 on assistant messages), rendered by `protocol.chat.render`, the renderer
  `agentune serve` uses, so training and serving see the same prompt.
- `sharegpt`: LLaMA-Factory's ShareGPT with tools (`conversations` of `{from, value}` turns
  human / gpt / function_call / observation, `system` and a `tools` JSON string; column and tag names
  as in its dataset_info.json), turned into OpenAI messages, then rendered the same way.

A record that cannot be read raises `BadRecord` naming the field and the fix; `convert` adds the
file:line and the record id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentune.core.artifacts import RawDataRecord
from agentune.protocol import chat, react

ROLES = ("system", "user", "assistant")
_ROLE_SET = frozenset(ROLES)
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")


class BadRecord(ValueError):
    """One record that does not validate: a short `kind` (counted in the metrics), the reason and, once
    known, the record's id."""

    def __init__(self, kind: str, reason: str, rid: str | None = None):
        super().__init__(reason)
        self.kind, self.rid = kind, rid


def record_id(obj: dict[str, Any]) -> str:
    """The record's `id`, or one made from its content (stable when lines are added, moved or removed)."""
    return obj["id"] if isinstance(obj.get("id"), str) and obj["id"].strip() else content_id(obj)


@dataclass
class SourceFile:
    file: str  # relative to the source's folder
    role: str  # train | heldout
    origin: str | None = None  # the user's file it was copied from
    sha256: str | None = None


@dataclass
class Source:
    """One training source as raw_data recorded it."""

    name: str
    kind: str  # agent-flan | openai | sharegpt
    files: list[SourceFile]
    weight: float = 1.0
    max_records: int | None = None
    sharegpt: dict[str, str] = field(default_factory=dict)

    @property
    def has_heldout_file(self) -> bool:
        return any(f.role == "heldout" for f in self.files)

    def parser(self) -> Callable[[Any], tuple[str | None, list[dict[str, Any]], dict[str, int]]]:
        if self.kind == "openai":
            return read_openai
        if self.kind == "sharegpt":
            tags = self.sharegpt
            return lambda obj: read_sharegpt(obj, tags)
        return read_agent_flan


def read_sources(raw_dir: Path) -> tuple[list[Source], int]:
    """The sources in `raw_dir` (from its agentune_raw.json) and the mixing seed. A folder without the
    record is one Agent-FLAN source: every *.jsonl in it, named after the folder."""
    if not RawDataRecord.exists(raw_dir):
        files = [SourceFile(p.name, "train") for p in sorted(raw_dir.glob("*.jsonl"), key=lambda p: p.name)]
        return [Source(raw_dir.name, "agent-flan", files)], 0
    rec = RawDataRecord.read(raw_dir)
    sources = []
    for s in rec.sources:
        files = [SourceFile(f["file"], f["role"], f.get("origin"), f.get("sha256")) for f in s["files"]]
        files = sorted(files, key=lambda f: (f.role != "train", f.file))
        sources.append(
            Source(
                s["name"],
                s["kind"],
                files,
                s.get("weight", 1.0),
                s.get("max_records"),
                s.get("sharegpt") or {},
            )
        )
    return sources, rec.seed


# ---- agent-flan ------------------------------------------------------------------------------------


def read_agent_flan(obj: Any) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
    """Validate one Agent-FLAN record; return (id, messages with explicit boolean loss, {})."""
    if not isinstance(obj, dict):
        raise BadRecord("not_object", f"expected a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise BadRecord("missing_id", "missing or empty string field 'id'")
    if "conversation" not in obj:
        raise BadRecord(
            "missing_conversation", "missing field 'conversation' (a list of {role, content, loss} messages)"
        )
    conv = obj["conversation"]
    if not isinstance(conv, list) or not conv:
        raise BadRecord("bad_conversation", "'conversation' must be a non-empty list of messages")
    messages = []
    for i, m in enumerate(conv):
        if type(m) is not dict:
            raise BadRecord("bad_message", f"conversation[{i}] is not an object")
        role, content, loss = m.get("role"), m.get("content"), m.get("loss")
        if role not in _ROLE_SET:
            raise BadRecord(
                "unknown_role", f"conversation[{i}]: unknown role {role!r}; allowed: {', '.join(ROLES)}"
            )
        if loss is not None and loss is not True and loss is not False:
            raise BadRecord(
                "bad_loss", f"conversation[{i}] ({role}): 'loss' must be true or false, got {loss!r}"
            )
        messages.append({"role": role, "content": content, "loss": role == "assistant" and loss is not False})
    check_messages(messages, "conversation")
    return rid, messages, {}


def check_messages(messages: list[dict[str, Any]], where: str) -> None:
    """String, non-empty contents and a turn order xtuner's openai_map_fn keeps whole."""
    for i, m in enumerate(messages):
        content = m["content"]
        if type(content) is not str:
            what = type(content).__name__
            raise BadRecord(
                "bad_content", f"{where}[{i}] ({m['role']}): 'content' must be a string, got {what}"
            )
        if not content or content.isspace():
            raise BadRecord("empty_content", f"{where}[{i}] ({m['role']}): empty content")
    check_turns(messages)


def check_turns(messages: list[dict[str, Any]]) -> None:
    """Turn order xtuner's openai_map_fn turns into (input, output) pairs without losing anything."""
    roles = [m["role"] for m in messages]
    if not any(m["loss"] for m in messages):
        if "assistant" not in roles:
            raise BadRecord("no_assistant_turn", "no assistant turn: nothing to train on")
        raise BadRecord(
            "no_trained_turn", "every assistant turn has loss=false (weight 0): nothing to train on"
        )
    prev = None
    for i, role in enumerate(roles):
        if prev is None and role != "system":
            if role != "user":
                raise BadRecord("turn_order", f"the first non-system turn must be 'user', got {role!r}")
            prev = role
        elif role == "assistant" and prev == "assistant":
            raise BadRecord(
                "turn_order", f"conversation[{i}]: two assistant turns in a row (no user turn between them)"
            )
        elif prev is not None:
            prev = role
    if roles[-1] != "assistant":
        raise BadRecord(
            "turn_order",
            f"the conversation ends with a {roles[-1]!r} turn, which would never be answered or trained",
        )


# ---- openai ----------------------------------------------------------------------------------------


def content_id(obj: Any) -> str:
    """A record id from its content (sha256 of its canonical JSON, 16 hex digits)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise BadRecord("bad_content", f"{where}: content must be a string or a list of text parts")


def _tools(raw: Any, field_name: str) -> list[dict[str, Any]]:
    """`tools` as JSON-schema function specs: `{type: function, function: {...}}` or bare specs."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRecord("bad_tools", f"'{field_name}' must be a list of tools, got {type(raw).__name__}")
    out = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) and "function" in t else t
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRecord(
                "bad_tools",
                f"{field_name}[{i}]: expected {{type: function, function: {{name, description, parameters}}}}",
            )
        out.append(fn)
    return out


def read_openai(obj: Any) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
    """One OpenAI chat fine-tuning record -> (id, protocol messages, {parallel: n})."""
    if not isinstance(obj, dict):
        raise BadRecord("not_object", f"expected a JSON object, got {type(obj).__name__}")
    rid = record_id(obj)
    try:
        return rid, *_read_openai(obj)
    except BadRecord as exc:
        exc.rid = rid
        raise


def _read_openai(obj: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    raw = obj.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRecord("missing_messages", "missing field 'messages' (a non-empty list of chat messages)")
    if "functions" in obj and "tools" not in obj:
        raise BadRecord("deprecated_functions", "'functions' is deprecated; list the tools under 'tools'")
    tools = _tools(obj.get("tools"), "tools")
    names = {t["name"] for t in tools}
    messages = []
    parallel = 0
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRecord("bad_message", f"{where} is not an object")
        role = m.get("role")
        if role not in OPENAI_ROLES:
            raise BadRecord("unknown_role", f"{where}.role: {role!r}; allowed: {', '.join(OPENAI_ROLES)}")
        msg: dict[str, Any] = {"role": role, "content": _text(m.get("content"), f"{where}.content")}
        if "weight" in m:
            if role != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
                raise BadRecord(
                    "bad_weight", f"{where}.weight: {m['weight']!r}; only assistant messages, 0 or 1"
                )
            msg["weight"] = m["weight"]
        if role == "tool":
            msg["tool_call_id"] = m.get("tool_call_id")
            if not tools:
                raise BadRecord(
                    "tool_without_tools", f"{where}: a tool message, but the record lists no 'tools'"
                )
        calls = m.get("tool_calls") if role == "assistant" else None
        if calls:
            msg["tool_calls"] = [
                _openai_call(c, f"{where}.tool_calls[{k}]", names) for k, c in enumerate(calls)
            ]
            parallel += len(calls) > 1
        messages.append(msg)
    return render(messages, tools), {"parallel_call_turns": parallel}


def _openai_call(call: Any, where: str, names: set[str]) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise BadRecord(
            "bad_tool_call", f"{where}: expected {{id, type: function, function: {{name, arguments}}}}"
        )
    if fn["name"] not in names:
        raise BadRecord(
            "unknown_tool",
            f"{where}.function.name: {fn['name']!r} is not in the record's tools ({sorted(names) or 'none'}); "
            "add its spec to 'tools' or fix the name",
        )
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise BadRecord("bad_tool_call", f"{where}.id: every call needs an id that its tool message names")
    try:
        chat.call_arguments(fn.get("arguments"), f"{where}.function.arguments")
    except chat.MessageError as exc:
        raise BadRecord("bad_arguments", f"{exc}; write the arguments as a JSON object string") from None
    return {"id": call["id"], "name": fn["name"], "arguments": fn.get("arguments")}


def render(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages -> protocol messages with explicit loss, checked as Agent-FLAN records are."""
    try:
        out = chat.render(messages, tools or None)
    except chat.MessageError as exc:  # the renderer names the field
        if exc.field.startswith("tools["):
            raise BadRecord("bad_tool_schema", f"{exc} (the protocol cannot list this tool)") from None
        kind = "unmatched_tool_call_id" if exc.field.endswith("tool_call_id") else "bad_arguments"
        raise BadRecord(kind, f"{exc}") from None
    rendered = [{"role": m["role"], "content": m["content"], "loss": bool(m.get("loss", False))} for m in out]
    check_messages(rendered, "rendered messages")
    return rendered


# ---- sharegpt --------------------------------------------------------------------------------------

SHAREGPT_DEFAULTS = {
    "messages": "conversations",
    "system": "system",
    "tools": "tools",
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}


def read_sharegpt(obj: Any, tags: dict[str, str]) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
    """One LLaMA-Factory ShareGPT record -> (id, protocol messages, {parallel: n})."""
    if not isinstance(obj, dict):
        raise BadRecord("not_object", f"expected a JSON object, got {type(obj).__name__}")
    rid = record_id(obj)
    try:
        return rid, *_read_sharegpt(obj, {**SHAREGPT_DEFAULTS, **tags})
    except BadRecord as exc:
        exc.rid = rid
        raise


def _read_sharegpt(obj: dict[str, Any], t: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    turns = obj.get(t["messages"])
    if not isinstance(turns, list) or not turns:
        raise BadRecord("missing_messages", f"missing field '{t['messages']}' (a non-empty list of turns)")
    raw_tools = obj.get(t["tools"])
    if isinstance(raw_tools, str) and raw_tools.strip():
        try:
            raw_tools = json.loads(raw_tools)
        except json.JSONDecodeError as exc:
            raise BadRecord("bad_tools", f"'{t['tools']}': not a JSON list of tools ({exc.msg})") from None
    tools = _tools(raw_tools or None, t["tools"])
    names = {x["name"] for x in tools}
    system = obj.get(t["system"]) or ""
    roles = {t["user_tag"]: "user", t["assistant_tag"]: "assistant", t["observation_tag"]: "tool",
             t["function_tag"]: "call", t["system_tag"]: "system"}  # fmt: skip
    messages: list[dict[str, Any]] = []
    open_calls: list[str] = []
    parallel = 0
    for i, turn in enumerate(turns):
        where = f"{t['messages']}[{i}]"
        if not isinstance(turn, dict) or turn.get(t["role_tag"]) not in roles:
            raise BadRecord(
                "unknown_role",
                f"{where}.{t['role_tag']}: {turn.get(t['role_tag']) if isinstance(turn, dict) else turn!r}; "
                f"allowed: {', '.join(roles)} (set raw_data sources[].sharegpt tags if yours differ)",
            )
        role, value = roles[turn[t["role_tag"]]], turn.get(t["content_tag"])
        if not isinstance(value, str):
            raise BadRecord("bad_content", f"{where}.{t['content_tag']}: must be a string")
        if open_calls and role != "tool":
            raise BadRecord(
                "call_without_observation",
                f"{where}: the function_call at {t['messages']}[{i - 1}] has no '{t['observation_tag']}' turn "
                "after it; add the tool's result",
            )
        if role == "system":
            if i == 0:
                system = value  # a leading system turn overrides the column, as in LLaMA-Factory
                continue
            messages.append({"role": "system", "content": value})
        elif role == "call":
            calls = _sharegpt_calls(value, where, names)
            parallel += len(calls) > 1
            ids = [f"call_{i}_{k}" for k in range(len(calls))]
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": cid, "name": name, "arguments": json.dumps(args, ensure_ascii=False)}
                for cid, (name, args) in zip(ids, calls, strict=True)]})  # fmt: skip
            open_calls = ids
        elif role == "tool":
            if not open_calls:
                raise BadRecord(
                    "observation_without_call",
                    f"{where}: an '{t['observation_tag']}' turn must follow a '{t['function_tag']}' turn",
                )
            results = _split_results(value, len(open_calls))
            messages += [
                {"role": "tool", "tool_call_id": cid, "content": r}
                for cid, r in zip(open_calls, results, strict=True)
            ]
            open_calls = []
        else:
            messages.append({"role": role, "content": value})
    if open_calls:
        raise BadRecord(
            "call_without_observation",
            f"{t['messages']}[{len(turns) - 1}]: the conversation ends on a function_call with no "
            f"'{t['observation_tag']}' turn after it; add the tool's result",
        )
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return render(messages, tools), {"parallel_call_turns": parallel}


def _sharegpt_calls(value: str, where: str, names: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """A function_call turn's value: `{"name", "arguments"}` or a JSON list of them (parallel calls)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadRecord(
            "bad_tool_call", f'{where}: not JSON ({exc.msg}); write {{"name": ..., "arguments": {{...}}}}'
        ) from None
    out = []
    for k, call in enumerate(parsed if isinstance(parsed, list) else [parsed]):
        at = f"{where}[{k}]" if isinstance(parsed, list) else where
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise BadRecord("bad_tool_call", f'{at}: expected {{"name": ..., "arguments": {{...}}}}')
        if call["name"] not in names:
            raise BadRecord(
                "unknown_tool",
                f"{at}.name: {call['name']!r} is not in the record's tools ({sorted(names) or 'none'}); "
                "add its spec to 'tools' or fix the name",
            )
        args = call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        if not isinstance(args, dict):
            raise BadRecord(
                "bad_arguments",
                f"{at}.arguments: must be a JSON object; write the arguments as {{key: value}}",
            )
        out.append((call["name"], args))
    return out


def _split_results(value: str, n: int) -> list[str]:
    """An observation's text per call: one call gets it whole; parallel calls a JSON list of n results."""
    if n == 1:
        return [value]
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and len(parsed) == n:
        return [react.result_text(r) for r in parsed]
    raise BadRecord(
        "bad_observation",
        f"an observation answers {n} parallel calls: write it as a JSON list of {n} results, in call order",
    )
