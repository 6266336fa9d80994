"""OpenAI chat messages <-> the protocol the model was trained in.

Requests: `tools` become lagent's ReAct system prompt (`react.render_system`; the client's leading
system messages follow it; a system message later in the conversation stays where it is, as xtuner
trains it, and lagent's tool result, a system turn `Response:...` after a call, is rendered in the
model's own tool-result convention), each earlier `tool_calls` entry becomes an `Action:` turn, and each `tool` message
becomes a tool-result turn in the convention of the model's training data (`ToolResultStyle`, read from
its provenance). Several calls in one assistant message, answered by several `tool` messages in a row,
become call/result pairs in the order the results come, since the protocol calls one tool per turn.

Replies: a call to an offered tool with a JSON-object argument comes back as `tool_calls`; everything
else (a final answer, a call to a tool that was not offered, arguments that are not a JSON object) as
`content`, the model's text unchanged, so no client ever receives a malformed tool call.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agentune.protocol import react
from agentune.serve.schema import AssistantMessage, ChatRequest, RequestError, ToolMessage, text_of


def tool_specs(req: ChatRequest) -> list[dict[str, Any]] | None:
    """The request's tools as JSON-schema function specs (None when it offers none)."""
    if not req.tools:
        return None
    return [t.function.model_dump(exclude_none=True) for t in req.tools]


def tool_choice(req: ChatRequest) -> str:
    """`none`, `auto`, `required`, or `function:<name>` (a named function, checked to be offered)."""
    choice = req.tool_choice
    if choice is None:
        return "auto" if req.tools else "none"
    if isinstance(choice, str):
        if choice == "required" and not req.tools:
            raise RequestError("tool_choice 'required' needs at least one tool in `tools`", "tool_choice")
        return choice if req.tools else "none"
    names = [t.function.name for t in req.tools or []]
    if choice.function.name not in names:
        raise RequestError(
            f"tool_choice names function {choice.function.name!r}, which is not in `tools` ({names})",
            "tool_choice.function.name",
        )
    return f"function:{choice.function.name}"


def _arguments(raw: str, where: str) -> dict[str, Any]:
    try:
        args = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise RequestError(f"{where}: arguments are not JSON ({exc.msg})", where) from None
    if not isinstance(args, dict):
        raise RequestError(f"{where}: arguments must be a JSON object", where)
    return args


def prompt_messages(
    req: ChatRequest, style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT
) -> list[dict[str, str]]:
    """The request as protocol messages (system / user / assistant text), as training rendered them."""
    tools = tool_specs(req)
    lead = 0  # the leading system messages join the tool prompt; later ones stay where they are
    while lead < len(req.messages) and req.messages[lead].role in ("system", "developer"):
        lead += 1
    system = "\n".join(s for s in (text_of(m.content) for m in req.messages[:lead]) if s)
    out: list[dict[str, str]] = []
    if tools:
        try:
            system = react.render_system(tools) + ("\n" + system if system else "")
        except react.ToolSpecError as exc:
            bad = next(i for i, t in enumerate(tools) if not _maps(t))
            raise RequestError(f"tools[{bad}].function: {exc}", f"tools[{bad}].function") from None
    if system:
        out.append({"role": "system", "content": system})
    pending: dict[str, str] = {}  # tool_call_id -> the Action turn that made it, until its result comes
    for i, msg in enumerate(req.messages[lead:], start=lead):
        if isinstance(msg, ToolMessage):
            if msg.tool_call_id not in pending:
                raise RequestError(
                    f"messages[{i}]: a tool message must answer a call of the assistant message before it; "
                    f"tool_call_id {msg.tool_call_id!r} answers none of "
                    f"{sorted(pending) or 'no calls'}",
                    f"messages[{i}].tool_call_id",
                )
            out.append({"role": "assistant", "content": pending.pop(msg.tool_call_id)})
            out.append(style.message(text_of(msg.content)))
            continue
        for call in pending.values():  # calls left unanswered still happened
            out.append({"role": "assistant", "content": call})
        pending = {}
        if isinstance(msg, AssistantMessage) and msg.tool_calls:
            thought = text_of(msg.content).strip()
            for k, call in enumerate(msg.tool_calls):
                args = _arguments(
                    call.function.arguments, f"messages[{i}].tool_calls[{k}].function.arguments"
                )
                pending[call.id] = react.format_call(thought if k == 0 else "", call.function.name, args)
            continue
        role, content = ("system" if msg.role == "developer" else msg.role), text_of(msg.content)
        if role == "system" and content.startswith(react.RESPONSE) and _after_call(out):
            out.append(style.message(content[len(react.RESPONSE) :].strip()))  # lagent's tool result
            continue
        out.append({"role": role, "content": content})
    for call in pending.values():
        out.append({"role": "assistant", "content": call})
    return out


def _after_call(messages: list[dict[str, str]]) -> bool:
    return (
        bool(messages)
        and messages[-1]["role"] == "assistant"
        and react.parse_reply(messages[-1]["content"]).kind == "call"
    )


def _maps(spec: dict[str, Any]) -> bool:
    try:
        react.lagent_tool(spec)
    except react.ToolSpecError:
        return False
    return True


def offered(name: str | None, tools: list[dict[str, Any]] | None) -> bool:
    return bool(name) and any(t.get("name") == name for t in tools or [])


def reply_message(text: str, tools: list[dict[str, Any]] | None, choice: str) -> dict[str, Any]:
    """The assistant message for the model's reply `text`: a tool call when it is a valid call to an
    offered tool (and tools may be called), else the text as content."""
    if tools and choice != "none":
        parsed = react.parse_reply(text)
        if parsed.kind == "call" and parsed.args is not None and offered(parsed.action, tools):
            return {
                "role": "assistant",
                "content": parsed.thought or None,
                "tool_calls": [
                    {
                        "id": f"call_{uuid.uuid4().hex[:24]}",
                        "type": "function",
                        "function": {"name": parsed.action, "arguments": react.format_args(parsed.args)},
                    }
                ],
            }
    return {"role": "assistant", "content": text}
