"""OpenAI chat requests <-> the protocol the model was trained in.

Requests are rendered by `protocol.chat.render`, the renderer `convert` uses for OpenAI-format training
data: `tools` become lagent's ReAct system prompt, each earlier `tool_calls` entry an `Action:` turn,
each `tool` message a tool-result turn in the convention of the model's training data
(`ToolResultStyle`, read from its provenance), parallel calls call/result pairs in the order the
results come, and a plain-text assistant answer a `Final Answer:` (that module says it all).

Replies (`reply_message`), when the request offers tools: a call to an offered tool with a JSON-object
argument comes back as `tool_calls`, a `Final Answer:` as `content` with the answer alone, and the
Thought of either in `reasoning` (as vLLM's reasoning parsers send it); anything else (a call to a
tool that was not offered, arguments that are not a JSON object, text outside the protocol) as
`content`, the model's text unchanged, so no client ever receives a malformed tool call. A request
without tools gets the model's text unchanged.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

from agentune.protocol import chat, react
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


class Thoughts:
    """The Thoughts of the tool calls this server sent, by call id (the newest `size`).

    OpenAI clients send an assistant's `tool_calls` back without the `reasoning` that came with them;
    the model was trained on calls that carry their Thought, so the history is rendered with it."""

    def __init__(self, size: int = 4096):
        self.size, self._by_id = size, OrderedDict()

    def remember(self, message: dict[str, Any]) -> None:
        if message.get("reasoning") and message.get("tool_calls"):
            self._by_id[message["tool_calls"][0]["id"]] = message["reasoning"]
            while len(self._by_id) > self.size:
                self._by_id.popitem(last=False)

    def get(self, call_id: str) -> str | None:
        return self._by_id.get(call_id)


def _plain(msg: Any, thoughts: Thoughts | None = None) -> dict[str, Any]:
    """A request message as the plain dict `protocol.chat.render` reads; an assistant message's
    `reasoning` (sent back, or remembered for its call) becomes its Thought again."""
    out: dict[str, Any] = {"role": msg.role, "content": text_of(msg.content)}
    if isinstance(msg, ToolMessage):
        out["tool_call_id"] = msg.tool_call_id
    if not isinstance(msg, AssistantMessage):
        return out
    thought = msg.reasoning or msg.reasoning_content
    if msg.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in msg.tool_calls
        ]
        if not out["content"]:
            out["content"] = thought or (thoughts.get(msg.tool_calls[0].id) if thoughts else None) or ""
    elif thought and out["content"] and react.FINAL not in out["content"]:
        out["content"] = react.format_final(thought, out["content"])
    return out


def prompt_messages(
    req: ChatRequest,
    style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT,
    thoughts: Thoughts | None = None,
) -> list[dict[str, str]]:
    """The request as protocol messages (system / user / assistant text), as training rendered them
    (`protocol.chat.render`, which `convert` uses for OpenAI-format training data)."""
    try:
        rendered = chat.render([_plain(m, thoughts) for m in req.messages], tool_specs(req), style)
    except chat.MessageError as exc:
        raise RequestError(str(exc), exc.field) from None
    return [{"role": m["role"], "content": m["content"]} for m in rendered]


def offered(name: str | None, tools: list[dict[str, Any]] | None) -> bool:
    return bool(name) and any(t.get("name") == name for t in tools or [])


def reply_message(text: str, tools: list[dict[str, Any]] | None, choice: str) -> dict[str, Any]:
    """The assistant message for the model's reply `text`, in OpenAI's shape.

    With tools offered (and allowed), a valid call to an offered tool comes back as `tool_calls` and a
    `Final Answer:` as `content` holding the answer alone; the Thought of either goes to `reasoning`,
    the field vLLM's reasoning parsers fill. Anything else, and every reply to a request without tools
    (a client such as lagent that renders the protocol itself), is the model's text unchanged."""
    if tools and choice != "none":
        parsed = react.parse_reply(text)
        thought = {"reasoning": parsed.thought} if parsed.thought else {}
        if parsed.kind == "call" and parsed.args is not None and offered(parsed.action, tools):
            return {
                "role": "assistant",
                "content": None,
                **thought,
                "tool_calls": [
                    {
                        "id": f"call_{uuid.uuid4().hex[:24]}",
                        "type": "function",
                        "function": {"name": parsed.action, "arguments": react.format_args(parsed.args)},
                    }
                ],
            }
        if parsed.kind == "final":
            return {"role": "assistant", "content": parsed.final_answer, **thought}
    return {"role": "assistant", "content": text}
