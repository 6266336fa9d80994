"""A vLLM tool-parser plugin for lagent's ReAct protocol, built on the project's own parser.

    vllm serve models/merged --enable-auto-tool-choice \\
        --tool-parser-plugin $(python -c 'import agentune.serve.vllm_tool_parser as m; print(m.__file__)') \\
        --tool-call-parser agentune-react

(`agentune serve --engine vllm` writes this command.) The chat template the model carries
(`tokenizer_config.json`, written by export) renders the prompt; this plugin turns the reply into
`tool_calls` exactly as `agentune serve` does (`render.reply_message`: a valid call to an offered tool
with a JSON-object argument, a final answer as content with the answer alone, else the text as content).
Streaming: the Thought is streamed as `reasoning`, a final answer as content; a call is sent as one
`tool_calls` delta once its arguments form a complete JSON object. A whole (non-streamed) reply's
Thought is not sent: vLLM's tool-parser interface has no field for it (its reasoning parsers fill one). A call whose arguments never do stays unsent (vLLM's streaming interface has no end-of-reply
hook to send it as content then); non-streaming requests get it as content.

The parsing core (`parse_final`, `StreamState`) has no vLLM types and is tested on CPU; the vLLM
adapter class is defined only where vLLM can be imported. Import paths follow vLLM's layout since
0.9 (`vllm.entrypoints.openai.tool_parsers`) and since 0.14 (`vllm.tool_parsers`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agentune.protocol import react
from agentune.serve.render import reply_message

NAME = "agentune-react"


def parse_final(text: str, tools: list[dict[str, Any]] | None) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, tool calls) for a whole reply, as `agentune serve` sends it: the calls as
    `{"name", "arguments"}` (a JSON string), a final answer's content the answer alone."""
    msg = reply_message(text, tools, "auto")
    calls = [c["function"] for c in msg.get("tool_calls") or []]
    return msg.get("content"), calls


_ENDS = (f"\n{react.ACTION}", f"\n{react.FINAL}")


class StreamState:
    """Streaming state for one reply: `feed(current_text)` returns what to send for the new text:
    `{"reasoning": str}` (the Thought), `{"content": str}` (a final answer alone, or text outside the
    protocol), `{"tool_call": {"name", "arguments"}}`, or None (hold)."""

    def __init__(self, tools: list[dict[str, Any]] | None):
        self.tools, self.sent, self.call_sent = tools, 0, False

    def _piece(self, text: str, start: int, end: int, key: str) -> dict[str, Any] | None:
        start = max(start, self.sent)
        if end <= start:
            return None
        self.sent = end
        return {key: text[start:end]}

    def feed(self, text: str) -> dict[str, Any] | None:
        if self.call_sent:
            return None
        head = (react.THOUGHT + " ", react.FINAL, react.ACTION)
        if any(k.startswith(text) for k in head) and text not in head:
            return None  # too short to tell which part of the protocol the reply starts with
        body = len(react.THOUGHT) + (text[len(react.THOUGHT) : len(react.THOUGHT) + 1] == " ")
        final = text.find(react.FINAL)
        if final >= 0:  # the Thought before it (if not all sent), then the answer alone
            if text.startswith(react.THOUGHT) and self.sent < final:
                thought_end = final - 1 if text[final - 1 : final] == "\n" else final
                out = self._piece(text, body, thought_end, "reasoning")
                if out:
                    return out
            answer = final + len(react.FINAL)
            if len(text) == answer:
                return None  # the space after the keyword is not part of the answer
            return self._piece(text, answer + (text[answer] == " "), len(text), "content")
        cut = text.find(_ENDS[0])
        if text.startswith(react.ACTION):
            cut = 0
        if text.startswith(react.THOUGHT) and cut < 0:  # the Thought, up to a possible next keyword
            return self._piece(text, body, len(text) - _partial_keyword(text), "reasoning")
        if cut < 0:  # text outside the protocol: stream it
            return self._piece(text, 0, len(text) - _partial_keyword(text), "content")
        if text.startswith(react.THOUGHT) and self.sent < cut:
            out = self._piece(text, body, cut, "reasoning")
            if out:
                return out
        if react.ACTION_INPUT not in text[cut:]:
            return None
        _, calls = parse_final(text, self.tools)
        if not calls or not _complete_object(text.rsplit(react.ACTION_INPUT, 1)[1]):
            return None
        self.call_sent = True
        return {"tool_call": calls[0]}


def _partial_keyword(text: str) -> int:
    """How many trailing characters could start `\\nAction:` or `\\nFinal Answer:` (held back)."""
    for n in range(min(max(map(len, _ENDS)), len(text)), 0, -1):
        if any(key.startswith(text[-n:]) for key in _ENDS):
            return n
    return 0


def _complete_object(raw: str) -> bool:
    return react.parse_args(raw.strip())[0] is not None


def _vllm_classes():
    try:
        from vllm.tool_parsers import ToolParser, ToolParserManager
    except ImportError:
        from vllm.entrypoints.openai.tool_parsers import ToolParser, ToolParserManager
    from vllm.entrypoints.openai import protocol

    return ToolParser, ToolParserManager, protocol


try:
    _ToolParser, _Manager, _proto = _vllm_classes()
except ImportError:  # vLLM absent: the parsing core above still works
    _ToolParser = None


if _ToolParser is not None:

    @_Manager.register_module(NAME)
    class AgentuneReactToolParser(_ToolParser):
        """lagent's ReAct replies -> OpenAI tool calls, for `vllm serve --tool-call-parser agentune-react`."""

        def __init__(self, tokenizer, *args, **kwargs):
            super().__init__(tokenizer, *args, **kwargs)
            self._state: StreamState | None = None

        @staticmethod
        def _tools(request) -> list[dict[str, Any]] | None:
            return (
                [t.function.model_dump(exclude_none=True) for t in request.tools] if request.tools else None
            )

        def extract_tool_calls(self, model_output: str, request):
            content, calls = parse_final(model_output, self._tools(request))
            return _proto.ExtractedToolCallInformation(
                tools_called=bool(calls),
                tool_calls=[
                    _proto.ToolCall(type="function", function=_proto.FunctionCall(**c)) for c in calls
                ],
                content=content,
            )

        def extract_tool_calls_streaming(self, previous_text, current_text, delta_text, previous_token_ids,
                                         current_token_ids, delta_token_ids, request):  # fmt: skip
            if self._state is None or not previous_text:
                self._state = StreamState(self._tools(request))
            out = self._state.feed(current_text)
            if out is None:
                return None
            if "content" in out:
                return _proto.DeltaMessage(content=out["content"])
            if "reasoning" in out:  # `reasoning` since vLLM 0.11, `reasoning_content` before
                field = (
                    "reasoning" if "reasoning" in _proto.DeltaMessage.model_fields else "reasoning_content"
                )
                return _proto.DeltaMessage(**{field: out["reasoning"]})
            call = out["tool_call"]
            self.prev_tool_call_arr = [{"name": call["name"], "arguments": json.loads(call["arguments"])}]
            self.streamed_args_for_tool = [call["arguments"]]
            self.current_tool_id = 0
            return _proto.DeltaMessage(tool_calls=[_proto.DeltaToolCall(
                index=0, id=f"call_{uuid.uuid4().hex[:24]}", type="function",
                function=_proto.DeltaFunctionCall(name=call["name"], arguments=call["arguments"]).model_dump(exclude_none=True),
            )])  # fmt: skip
