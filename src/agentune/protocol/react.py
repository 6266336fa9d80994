"""lagent's ReAct tool-calling protocol (lagent 0.2.4, English), the one Agent-FLAN models speak.

The system prompt is lagent's `CALL_PROTOCOL_EN`, filled exactly as lagent's `ReActProtocol.format`
fills it: the tool list is `str()` of the dicts lagent's `ActionExecutor.get_actions_info()` returns
(Python literals: `name`, `description`, `parameters` as a list of `{name, type, description}`,
`required`, optionally `return_data`, then `parameter_description`), the action names are `str()` of
a list inside the template's own brackets (`[['ArxivSearch']]`), and the keywords are glued to the
text that follows them (`Thought:Think what you need to solve, ...`). A reply is

    Thought: <reasoning>
    Action: <tool name>
    Action Input: <arguments as a JSON object>

after which the caller runs the tool and sends back its result (`ToolResultStyle`: as the training
data did; lagent itself sends a system turn `Response:<result>`), or

    Thought: <reasoning>
    Final Answer: <answer>

**Tools described as JSON schema** (OpenAI `tools`, BFCL, the sample catalogue) become lagent's shape
without losing what a model needs to call right. Each property becomes `{'name', 'type',
'description'}` with lagent's type names (string STRING, integer NUMBER, number FLOAT, boolean BOOLEAN,
array Array, as lagent derives them from Python annotations; object OBJECT, which lagent has no name
for), followed, only where the schema has them, by `enum` (the allowed values), `default`, `items`
(an array's item schema in the same shape, without a name), `properties` + `required` (a nested
object's parameters, same shape, recursively) and any other schema keyword as it is (`format`,
`minimum`, ...). Optional vs required is the tool's `required` list, as in lagent (other keys beside
`properties` and `required` at the top of `parameters`, such as BFCL's `optional` list, say nothing more
and are left out). A `$ref` is
resolved against the parameters' `$defs` / `definitions`. A name `Toolkit.api` is listed in the action
names as `Toolkit`, as lagent lists its toolkits. `tools_from_system` reads the list back into JSON
schema: the mapping is exact both ways for everything it writes.

**Parsing** is lagent's `ReActProtocol.parse`: `Final Answer:` anywhere wins; otherwise the last
`Action:` line and everything after the last `Action Input:`. Arguments are then read as lagent's
`JsonParser` reads them (an optional json code fence stripped, then `json.loads`): only a JSON object
counts, so `query="..."` or a Python literal is invalid, as it fails in lagent.
"""

from __future__ import annotations

import ast
import copy
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

#: lagent 0.2.4, lagent/agents/react.py `CALL_PROTOCOL_EN`, verbatim (its wording and spelling are
#: what Agent-FLAN models were prompted with; compatibility requires the exact text).
CALL_PROTOCOL_EN = """You are a assistant who can utilize external tools.
{tool_description}
To use a tool, please use the following format:
```
{thought}Think what you need to solve, do you need to use tools?
{action}the tool name, should be one of [{action_names}]
{action_input}the input to the action
```
The response after utilizing tools should using the following format:
```
{response}the results after call the tool.
```
If you already know the answer, or you do not need to use tools,
please using the following format to reply:
```
{thought}the thought process to get the final answer
{finish}final answer
```
Begin!"""

#: lagent 0.2.4, lagent/actions/parser.py `JsonParser.PARAMETER_DESCRIPTION`, added to every tool.
PARAMETER_DESCRIPTION = (
    "If you call this tool, you must pass arguments in the JSON format {key: value}, where the key is "
    "the parameter name."
)

# JSON-schema type <-> lagent type name (lagent's `_detect_type`: str STRING, int NUMBER, float FLOAT,
# bool BOOLEAN, list Array; lagent has no name for an object).
LAGENT_TYPES = {
    "string": "STRING",
    "integer": "NUMBER",
    "number": "FLOAT",
    "boolean": "BOOLEAN",
    "array": "Array",
    "object": "OBJECT",
}
JSON_TYPES = {v: k for k, v in LAGENT_TYPES.items()}
_OWN_KEYS = ("type", "description", "enum", "default", "items", "properties", "required")


class ToolSpecError(ValueError):
    """A tool spec that cannot be written in lagent's shape; the message names the tool and the fix."""


# --------------------------------------------------------------------------------------------------
# JSON schema -> lagent's tool description, and back


def _resolve(node: Any, defs: dict[str, Any], tool: str, seen: tuple[str, ...] = ()) -> Any:
    """`node` with every `$ref` into the parameters' `$defs` / `definitions` replaced by its target."""
    if isinstance(node, list):
        return [_resolve(x, defs, tool, seen) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        m = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", ref) if isinstance(ref, str) else None
        if m is None or m.group(1) not in defs:
            raise ToolSpecError(
                f"tool {tool!r}: $ref {ref!r} does not resolve (only refs into the parameters' $defs or "
                "definitions are supported); inline the schema it points to"
            )
        if ref in seen:
            raise ToolSpecError(f"tool {tool!r}: $ref {ref!r} refers to itself; inline a finite schema")
        target = _resolve(defs[m.group(1)], defs, tool, (*seen, ref))
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: _resolve(v, defs, tool, seen) for k, v in node.items() if k not in ("$defs", "definitions")}


def _lagent_type(schema: dict[str, Any]) -> str:
    t = schema.get("type", "string")
    if isinstance(t, list):  # ["string", "null"]: the first non-null type
        t = next((x for x in t if x != "null"), "string")
    if not isinstance(t, str):
        return "STRING"
    return LAGENT_TYPES.get(t, t.upper())


def _lagent_schema(schema: dict[str, Any], tool: str, where: str, named: bool = True) -> dict[str, Any]:
    """A property's schema as lagent's `{type, description, ...}` (without the name). A parameter always
    has a description, as in lagent; an array's item schema only when it has one."""
    if not isinstance(schema, dict):
        raise ToolSpecError(f"tool {tool!r}: {where} is not a schema object: {schema!r}")
    out: dict[str, Any] = {"type": _lagent_type(schema)}
    if named or "description" in schema:
        out["description"] = schema.get("description", "")
    if "enum" in schema:
        out["enum"] = list(schema["enum"])
    if "default" in schema:
        out["default"] = schema["default"]
    if isinstance(schema.get("items"), dict):
        out["items"] = _lagent_schema(schema["items"], tool, f"{where}.items", named=False)
    if isinstance(schema.get("properties"), dict):
        out["properties"] = _lagent_params(schema["properties"], tool, where)
    if "required" in schema:
        out["required"] = list(schema["required"])
    out.update({k: v for k, v in schema.items() if k not in _OWN_KEYS})
    return out


def _lagent_params(properties: dict[str, Any], tool: str, where: str) -> list[dict[str, Any]]:
    return [
        {"name": name, **_lagent_schema(prop, tool, f"{where}.{name}")} for name, prop in properties.items()
    ]


def lagent_tool(spec: dict[str, Any]) -> dict[str, Any]:
    """One tool as lagent's `get_actions_info()` lists it.

    `spec` is a JSON-schema function (`{name, description, parameters}`, optionally `return_data`), or
    already in lagent's shape (`parameters` a list), which is kept as it is.
    """
    if not isinstance(spec, dict):
        raise ToolSpecError(f"tool spec {spec!r:.80}: expected an object with name, description, parameters")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolSpecError(
            f"tool spec {json.dumps(spec, default=str)[:120]}: no 'name'; every tool needs one"
        )
    info: dict[str, Any] = {"name": name, "description": spec.get("description") or ""}
    params = spec.get("parameters")
    if isinstance(params, list):  # lagent's own shape
        info["parameters"] = copy.deepcopy(params)
        info["required"] = list(spec.get("required") or [])
    else:
        params = {"type": "object", "properties": {}} if params is None else params
        if not isinstance(params, dict):
            raise ToolSpecError(
                f"tool {name!r}: 'parameters' must be a JSON object schema, got {params!r:.80}"
            )
        schema = _resolve(params, {**params.get("definitions", {}), **params.get("$defs", {})}, name)
        props = schema.get("properties", {})
        if schema.get("type", "object") != "object" or not isinstance(props, dict):
            raise ToolSpecError(
                f"tool {name!r}: 'parameters' must be an object schema with 'properties' "
                f"(got type {schema.get('type')!r}); wrap a single value in an object"
            )
        info["parameters"] = _lagent_params(props, name, "parameters")
        info["required"] = list(schema.get("required") or [])
    if spec.get("return_data"):
        info["return_data"] = copy.deepcopy(spec["return_data"])
    info["parameter_description"] = spec.get("parameter_description", PARAMETER_DESCRIPTION)
    return info


def _json_schema(p: dict[str, Any]) -> dict[str, Any]:
    """lagent's `{type, description, ...}` back to a JSON schema (the inverse of `_lagent_schema`)."""
    t = p.get("type", "STRING")
    out: dict[str, Any] = {"type": JSON_TYPES.get(t, t.lower() if isinstance(t, str) else "string")}
    if p.get("description"):
        out["description"] = p["description"]
    for key in ("enum", "default"):
        if key in p:
            out[key] = p[key]
    if isinstance(p.get("items"), dict):
        out["items"] = _json_schema(p["items"])
    if isinstance(p.get("properties"), list):
        out["properties"] = {q["name"]: _json_schema(q) for q in p["properties"]}
    if "required" in p:
        out["required"] = list(p["required"])
    out.update({k: v for k, v in p.items() if k not in (*_OWN_KEYS, "name")})
    return out


def json_schema_tool(info: dict[str, Any]) -> dict[str, Any]:
    """A lagent tool description back to `{name, description, parameters: JSON schema}`."""
    tool = {
        "name": info["name"],
        "description": info.get("description", ""),
        "parameters": {
            "type": "object",
            "properties": {p["name"]: _json_schema(p) for p in info.get("parameters", [])},
            "required": list(info.get("required", [])),
        },
    }
    if info.get("return_data"):
        tool["return_data"] = info["return_data"]
    return tool


def action_names(infos: list[dict[str, Any]]) -> list[str]:
    """The action list lagent prints: a toolkit's APIs (`Toolkit.api`) under one name `Toolkit`."""
    return list(dict.fromkeys(i["name"].split(".", 1)[0] for i in infos))


def render_system(tools: list[dict[str, Any]]) -> str:
    """lagent's system prompt offering `tools` (JSON-schema or lagent-shaped specs)."""
    infos = [lagent_tool(t) for t in tools]
    return CALL_PROTOCOL_EN.format(
        tool_description=str(infos),
        action_names=str(action_names(infos)),
        thought=THOUGHT,
        action=ACTION,
        action_input=ACTION_INPUT,
        response=RESPONSE,
        finish=FINAL,
    )


_HEAD, _, _REST = CALL_PROTOCOL_EN.partition("{tool_description}")
_TAIL = _REST.split("{", 1)[0]  # the fixed text right after the tool list


def tools_from_system(text: str) -> list[dict[str, Any]] | None:
    """The tools (as JSON-schema specs) offered by a system prompt written by `render_system`; None if
    the text is not that prompt or its tool list does not read back."""
    if not text.startswith(_HEAD) or _TAIL not in text:
        return None
    listing = text[len(_HEAD) : text.index(_TAIL, len(_HEAD))]
    try:
        infos = ast.literal_eval(listing)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(infos, list) or not all(isinstance(i, dict) and "name" in i for i in infos):
        return None
    return [json_schema_tool(i) for i in infos] or None


def is_tool_prompt(text: str) -> bool:
    """A system prompt that asks for ReAct tool calls (lagent's wording or any other)."""
    return ACTION in text and ACTION_INPUT in text


# --------------------------------------------------------------------------------------------------
# the model's turns and the tool results


def format_args(args: dict[str, Any]) -> str:
    """Arguments as the one-line JSON object the model is trained to write."""
    return json.dumps(args, ensure_ascii=False)


def format_call(thought: str, name: str, args: dict[str, Any]) -> str:
    """An assistant turn that calls one tool."""
    return f"{THOUGHT} {thought}\n{ACTION} {name}\n{ACTION_INPUT} {format_args(args)}"


def format_final(thought: str, answer: str) -> str:
    """An assistant turn that answers without (further) tool use."""
    return f"{THOUGHT} {thought}\n{FINAL} {answer}"


def result_text(result: Any) -> str:
    """A tool's result as text (strings as they are, anything else as JSON)."""
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


@dataclass(frozen=True)
class ToolResultStyle:
    """How a tool's result goes back to the model: the role of the turn and the text before the result.

    `convert` reads it from the training data and records it; evaluation and serving render results
    the same way. The sample data sends `user` turns `Response: <result>` (docs/data.md says why).
    """

    role: str = "user"
    prefix: str = f"{RESPONSE} "

    def message(self, result: Any) -> dict[str, str]:
        return {"role": self.role, "content": self.prefix + result_text(result)}

    def result_of(self, message: dict[str, Any]) -> str | None:
        """The result text if `message` is a tool result in this style, else None."""
        content = message.get("content")
        if message.get("role") != self.role or not isinstance(content, str):
            return None
        if not content.startswith(self.prefix.rstrip()):
            return None
        return content[len(self.prefix.rstrip()) :].strip()

    @classmethod
    def detect(cls, message: dict[str, Any]) -> ToolResultStyle:
        """The style of one message that follows a call in the training data."""
        content = message.get("content") or ""
        if content.startswith(RESPONSE):
            gap = content[len(RESPONSE) : len(RESPONSE) + 1]
            return cls(message.get("role", "user"), RESPONSE + (gap if gap.isspace() else ""))
        return cls(message.get("role", "user"), "")

    def dump(self) -> dict[str, str]:
        return {"role": self.role, "prefix": self.prefix}

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> ToolResultStyle:
        return cls(**data) if data else cls()


DEFAULT_TOOL_RESULT = ToolResultStyle()


def format_response(result: Any) -> str:
    """The text of a tool result in the default style (`Response: <result>`)."""
    return DEFAULT_TOOL_RESULT.message(result)["content"]


# --------------------------------------------------------------------------------------------------
# parsing


@dataclass
class ParsedReply:
    """What a model's reply says under the protocol, read as lagent reads it."""

    kind: str  # "call", "final" or "invalid" (lagent: an action, FinishAction, NoAction)
    thought: str | None = None
    action: str | None = None
    action_input: str | None = None  # lagent's action_input: everything after the last Action Input:
    args: dict[str, Any] | None = None  # the arguments, when action_input is a JSON object
    final_answer: str | None = None
    hallucinated: bool = False  # protocol text after the arguments: an invented Response, a second Action
    problems: list[str] = field(default_factory=list)

    @property
    def format_valid(self) -> bool:
        return self.kind in ("call", "final")

    @property
    def args_json_valid(self) -> bool:
        return self.args is not None


# A keyword at the start of a line: protocol text that does not belong after the arguments.
_KEYWORD_LINE = re.compile(r"^\s*(Thought|Action|Action Input|Response|Observation|Final Answer)\s*:", re.M)
_FENCE = re.compile(r"^\s*(```json\n)?(.*)\n```\s*$", re.S)  # lagent JsonParser.parse_inputs


def parse_args(action_input: str) -> tuple[dict[str, Any] | None, str | None]:
    """Arguments as lagent's JsonParser reads them: (the JSON object, None) or (None, the problem)."""
    text = action_input
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(2).strip()
    try:
        args = json.loads(text)
    except json.JSONDecodeError:
        return None, "Action Input is not a JSON object"
    if not isinstance(args, dict):
        return None, f"Action Input is JSON but not an object ({type(args).__name__})"
    return args, None


def _after_arguments(action_input: str) -> str:
    """What follows the first JSON object of the arguments (or the first line when there is none)."""
    stripped = action_input.lstrip()
    try:
        _, end = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError:
        return stripped.split("\n", 1)[1] if "\n" in stripped else ""
    return stripped[end:]


def parse_reply(text: str) -> ParsedReply:
    """Parse a model reply exactly as lagent 0.2.4's `ReActProtocol.parse` does, then read the
    arguments as its `JsonParser` does. Never raises: unparseable text gives `kind="invalid"`."""
    text = text or ""
    thought = text.split(ACTION)[0].split(THOUGHT)[-1].split(FINAL)[0].strip() or None
    if FINAL in text:
        return ParsedReply(kind="final", thought=thought, final_answer=text.split(FINAL)[-1].strip())
    actions = re.findall(f"{ACTION}(.*?)\n", text)
    if not actions:
        return ParsedReply(kind="invalid", thought=thought, problems=["neither Action nor Final Answer"])
    inputs = re.findall(f"{ACTION_INPUT}(.*)", text, re.DOTALL)
    if not inputs:
        return ParsedReply(kind="invalid", thought=thought, problems=["no Action Input after Action"])
    name = actions[-1].strip()
    raw = inputs[-1].strip().strip('"')
    args, problem = parse_args(raw)
    reply = ParsedReply(kind="call", thought=thought, action=name or None, action_input=raw, args=args)
    reply.hallucinated = bool(_KEYWORD_LINE.search(_after_arguments(raw)))
    if problem:
        reply.problems.append(problem)
    if not name:
        reply.problems.append("empty Action")
        reply.kind = "invalid"
    return reply
