"""OpenAI-style chat messages -> the protocol the model is trained in: one renderer for training data
(`convert`, for OpenAI and ShareGPT sources) and for requests (`serve`), so a conversation is the same
prompt, token for token, whether it was trained on or sent to the server.

Input messages are plain dicts in OpenAI's shape, already reduced to text: `{role, content}` with
`role` system / developer / user / assistant / tool, an assistant's `tool_calls` as
`[{id, name, arguments}]` (`arguments` the JSON string OpenAI sends), a tool message's `tool_call_id`,
and an optional assistant `weight` (0 = context only, not trained).

The rendering (what `agentune serve` has always sent the model):
- `tools` become lagent's ReAct system prompt (`react.render_system`); the leading system messages
  follow it. A system message later in the conversation stays where it is, except lagent's own tool
  result (a system turn `Response:...` right after a call), which is sent in the model's convention.
- Each call becomes an `Action:` turn; the assistant's text beside its calls is the first call's
  Thought. Several calls in one message, answered by several `tool` messages, become call/result
  pairs in the order the results come (the protocol calls one tool per turn); a call never answered
  still happened and stays in the history.
- Each `tool` message becomes a tool-result turn in the model's tool-result convention
  (`react.ToolResultStyle`).
- With tools offered, an assistant message that is plain text (no `Thought:`, `Action:` or `Final
  Answer:`) is a final answer: `Thought: \\nFinal Answer: <text>`. Text that already speaks the protocol
  stays as it is.
"""

from __future__ import annotations

import json
from typing import Any

from agentune.protocol import react


class MessageError(ValueError):
    """A conversation that cannot be rendered: the message and the field (`messages[3].tool_call_id`)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def call_arguments(raw: Any, where: str) -> dict[str, Any]:
    """A call's `arguments` (a JSON string, as OpenAI sends them) as a dict, or MessageError naming `where`."""
    if isinstance(raw, dict):
        return raw
    try:
        args = json.loads(raw or "{}")
    except (json.JSONDecodeError, TypeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else f"got {type(raw).__name__}"
        raise MessageError(f"{where}: arguments are not JSON ({why})", where) from None
    if not isinstance(args, dict):
        raise MessageError(f"{where}: arguments must be a JSON object, got {type(args).__name__}", where)
    return args


def is_protocol_text(text: str) -> bool:
    """Whether an assistant text already speaks the protocol (has a Thought, an Action or a Final Answer;
    the Jinja chat template applies the same test)."""
    return any(key in text for key in (react.THOUGHT, react.ACTION, react.FINAL))


def render(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT,
) -> list[dict[str, Any]]:
    """The conversation as protocol messages `{role, content}`; assistant turns also carry `loss`
    (False where the source message had `weight: 0`). Raises MessageError naming the field."""
    lead = 0  # the leading system messages join the tool prompt; later ones stay where they are
    while lead < len(messages) and messages[lead]["role"] in ("system", "developer"):
        lead += 1
    system = "\n".join(s for s in (m.get("content") or "" for m in messages[:lead]) if s)
    out: list[dict[str, Any]] = []
    if tools:
        try:
            system = react.render_system(tools) + ("\n" + system if system else "")
        except react.ToolSpecError as exc:
            bad = next(i for i, t in enumerate(tools) if not _maps(t))
            raise MessageError(f"tools[{bad}].function: {exc}", f"tools[{bad}].function") from None
    if system:
        out.append({"role": "system", "content": system})
    pending: dict[str, dict[str, Any]] = {}  # tool_call_id -> its Action turn, until its result comes
    for i, msg in enumerate(messages[lead:], start=lead):
        role, content = msg["role"], msg.get("content") or ""
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if call_id not in pending:
                raise MessageError(
                    f"messages[{i}]: a tool message must answer a call of the assistant message before it; "
                    f"tool_call_id {call_id!r} answers none of {sorted(pending) or 'no calls'}",
                    f"messages[{i}].tool_call_id",
                )
            out.append(pending.pop(call_id))
            out.append(style.message(content))
            continue
        out += pending.values()  # calls left unanswered still happened
        pending = {}
        loss = msg.get("weight", 1) != 0
        if role == "assistant" and msg.get("tool_calls"):
            for k, call in enumerate(msg["tool_calls"]):
                where = f"messages[{i}].tool_calls[{k}].function.arguments"
                args = call_arguments(call.get("arguments"), where)
                text = react.format_call(content.strip() if k == 0 else "", call["name"], args)
                pending[call["id"]] = {"role": "assistant", "content": text, "loss": loss}
            continue
        if role == "assistant":
            text = content if not tools or is_protocol_text(content) else react.format_final("", content)
            out.append({"role": "assistant", "content": text, "loss": loss})
            continue
        role = "system" if role == "developer" else role
        if role == "system" and content.startswith(react.RESPONSE) and _after_call(out):
            out.append(style.message(content[len(react.RESPONSE) :].strip()))  # lagent's tool result
            continue
        out.append({"role": role, "content": content})
    out += pending.values()
    return out


def _after_call(messages: list[dict[str, Any]]) -> bool:
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
