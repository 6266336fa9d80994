"""The ReAct tool-calling protocol shared by training data and evaluation.

Tools are described OpenAI-style (`{"name", "description", "parameters": JSON schema}`), rendered into
a system prompt that asks for one of two reply shapes:

    Thought: <reasoning>
    Action: <tool name>
    Action Input: <arguments as a JSON object>

after which the caller runs the tool and sends a **user** turn `Response: <tool output>`; or

    Thought: <reasoning>
    Final Answer: <answer>

The model must stop after `Action Input:`. Anything after it (`Response:`, `Observation:`, another
`Action:`, a `Final Answer:`) is a hallucinated continuation. Training data and evaluation prompts both
come from `render_system` / `format_*` here, so they can never drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

THOUGHT, ACTION, ACTION_INPUT, RESPONSE, FINAL = (
    "Thought:",
    "Action:",
    "Action Input:",
    "Response:",
    "Final Answer:",
)

SYSTEM_TEMPLATE = """You are an assistant that can use external tools.
You have access to these tools:
{tools}
To use a tool, reply in exactly this format and then stop:
Thought: think about what to do next
Action: the tool name, one of [{names}]
Action Input: the arguments as a JSON object
The tool's result will come back to you as:
Response: the result of the tool
If you know the answer, or no tool fits the request, reply:
Thought: think about the answer
Final Answer: the answer to the user
Begin!"""

# A keyword at the start of a line that ends the Action Input block.
_KEYWORD_LINE = re.compile(r"^\s*(Thought|Action|Action Input|Response|Observation|Final Answer)\s*:", re.M)


# Schema keywords in the order every tool line writes them; other keys follow in their own order.
SCHEMA_KEY_ORDER = ("type", "description", "enum", "default", "items", "properties", "required")


def canonical_schema(node: Any) -> Any:
    """A JSON schema with its keywords in `SCHEMA_KEY_ORDER`, recursively; parameter order is kept.

    Key order means nothing to a JSON parser, but a small model reads the schema as text. BFCL's
    files put `required` first and `type` last, the sample tools the other way round, so every
    source is written one way and evaluation prompts look like the training prompts.
    """
    if not isinstance(node, dict):
        return node
    keys = [k for k in SCHEMA_KEY_ORDER if k in node] + [k for k in node if k not in SCHEMA_KEY_ORDER]
    out = {}
    for k in keys:
        v = node[k]
        if k == "properties" and isinstance(v, dict):
            v = {name: canonical_schema(p) for name, p in v.items()}
        elif k == "items":
            v = [canonical_schema(i) for i in v] if isinstance(v, list) else canonical_schema(v)
        out[k] = v
    return out


def tool_line(tool: dict[str, Any]) -> str:
    """One compact JSON line per tool: name, description, parameters (JSON schema, canonical key order)."""
    spec = {"name": tool["name"], "description": tool.get("description", "")}
    spec["parameters"] = canonical_schema(tool.get("parameters", {"type": "object", "properties": {}}))
    return json.dumps(spec, ensure_ascii=False, separators=(", ", ": "))


def render_system(tools: list[dict[str, Any]]) -> str:
    """The system prompt that offers `tools` under the ReAct protocol."""
    return SYSTEM_TEMPLATE.format(
        tools="\n".join(tool_line(t) for t in tools),
        names=", ".join(t["name"] for t in tools),
    )


def tools_from_system(text: str) -> list[dict[str, Any]] | None:
    """The tool specs in a system prompt, one JSON line each as `render_system` writes them (None if none)."""
    tools = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"name"' in line:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "name" in obj:
                tools.append(obj)
    return tools or None


def format_args(args: dict[str, Any]) -> str:
    """Arguments as the one-line JSON object the model is trained to write."""
    return json.dumps(args, ensure_ascii=False)


def format_call(thought: str, name: str, args: dict[str, Any]) -> str:
    """An assistant turn that calls one tool."""
    return f"{THOUGHT} {thought}\n{ACTION} {name}\n{ACTION_INPUT} {format_args(args)}"


def format_final(thought: str, answer: str) -> str:
    """An assistant turn that answers without (further) tool use."""
    return f"{THOUGHT} {thought}\n{FINAL} {answer}"


def format_response(result: Any) -> str:
    """The user turn that feeds a tool's result back to the model."""
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return f"{RESPONSE} {text}"


@dataclass
class ParsedReply:
    """What a model's reply says under the protocol."""

    kind: str  # "call", "final" or "invalid"
    thought: str | None = None
    action: str | None = None
    action_input: str | None = None
    args: dict[str, Any] | None = None
    final_answer: str | None = None
    hallucinated: bool = False  # text after the call: an invented Response, a second Action, ...
    problems: list[str] = field(default_factory=list)

    @property
    def format_valid(self) -> bool:
        return self.kind in ("call", "final")

    @property
    def args_json_valid(self) -> bool:
        return self.args is not None


def _first_json_object(text: str) -> tuple[dict[str, Any] | None, int]:
    """Decode the JSON object that starts `text` (after whitespace); return it and where it ended."""
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    if not stripped.startswith("{"):
        return None, 0
    try:
        obj, end = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError:
        return None, 0
    return (obj, offset + end) if isinstance(obj, dict) else (None, 0)


def parse_reply(text: str) -> ParsedReply:
    """Parse a model reply. Never raises: unparseable text gives `kind="invalid"` with the reasons."""
    text = text or ""
    thought_m = re.search(r"^\s*Thought:\s*(.*)$", text, re.M)
    thought = thought_m.group(1).strip() if thought_m else None
    action_m = re.search(r"^\s*Action:\s*(.*)$", text, re.M)
    final_m = re.search(r"^\s*Final Answer:\s*(.*)", text, re.M | re.S)

    if action_m and (not final_m or action_m.start() < final_m.start()):
        name = action_m.group(1).strip()
        rest = text[action_m.end() :]
        input_m = re.search(r"^\s*Action Input:[ \t]*", rest, re.M)
        reply = ParsedReply(kind="call", thought=thought, action=name or None)
        if not name:
            reply.problems.append("empty Action")
        if not input_m:
            reply.problems.append("no Action Input after Action")
            reply.kind = "invalid"
            return reply
        body = rest[input_m.end() :]
        args, end = _first_json_object(body)
        if args is not None:
            raw, tail = body[:end].strip(), body[end:]
        else:
            nxt = _KEYWORD_LINE.search(body)
            raw = (body[: nxt.start()] if nxt else body).strip()
            tail = body[nxt.start() :] if nxt else ""
            reply.problems.append("Action Input is not a JSON object")
        reply.action_input, reply.args = raw, args
        reply.hallucinated = bool(_KEYWORD_LINE.search(tail))
        if not name:
            reply.kind = "invalid"
        return reply

    if final_m:
        answer = final_m.group(1).strip()
        return ParsedReply(kind="final", thought=thought, final_answer=answer)

    return ParsedReply(kind="invalid", thought=thought, problems=["neither Action nor Final Answer"])
