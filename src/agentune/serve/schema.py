"""The OpenAI chat-completions request, as pydantic models, and OpenAI-style error bodies.

Validation errors name the field the way OpenAI's `param` does (`messages[2].role`), so a client sees
which part of its body to fix. Fields clients send that change nothing here (`user`, `logprobs`,
`frequency_penalty`, `parallel_tool_calls`, ...) are accepted and ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Body(BaseModel):
    """A part of the request body: unknown fields are accepted and ignored, as OpenAI clients send many."""

    model_config = ConfigDict(extra="allow")


class TextPart(_Body):
    type: Literal["text"]
    text: str


Text = str | list[TextPart]


class FunctionSpec(_Body):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(_Body):
    type: Literal["function"] = "function"
    function: FunctionSpec


class FunctionCall(_Body):
    name: str
    arguments: str = "{}"


class ToolCall(_Body):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Body):
    role: Literal["system", "developer"]
    content: Text


class UserMessage(_Body):
    role: Literal["user"]
    content: Text


class AssistantMessage(_Body):
    role: Literal["assistant"]
    content: Text | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str | None = None  # the Thought a reply carried, when a client sends it back
    reasoning_content: str | None = None  # the same, under the older name


class ToolMessage(_Body):
    role: Literal["tool"]
    content: Text
    tool_call_id: str


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")]


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(_Body):
    include_usage: bool = False


class ChatRequest(_Body):
    """POST /v1/chat/completions."""

    model: str
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1)  # one choice per request
    return_token_ids: bool = False  # vLLM's extension: the reply carries `prompt_token_ids`

    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


def text_of(content: Text | None) -> str:
    """A message's content as one string (text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


class RequestError(Exception):
    """A request the server cannot answer: HTTP `status`, an OpenAI-style body naming `param`."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code
        self.type = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
            status, "invalid_request_error" if status < 500 else "server_error"
        )

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def param_path(loc: tuple[Any, ...]) -> str | None:
    """pydantic's error location as OpenAI writes a param: ('body', 'messages', 0, 'role') ->
    'messages[0].role'. Union branch names (the role tag, 'str', 'list[...]') are left out."""
    out = ""
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part in _BRANCHES or "[" in part or part.startswith("function-")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or None


_BRANCHES = {"system", "developer", "user", "assistant", "tool", "str", "NamedToolChoice", "TextPart"}


def validation_error(errors: list[dict[str, Any]]) -> RequestError:
    """The first pydantic error as a 400 naming its field (all of them in the message)."""
    parts = []
    for err in errors[:5]:
        where = param_path(tuple(err.get("loc", ())))
        if err.get("type") == "union_tag_invalid":
            where = f"{where}.role" if where else "role"
            msg = f"unknown role {err.get('input', {}).get('role')!r}; use system, user, assistant or tool"
        elif err.get("type") == "json_invalid":
            where, msg = (
                None,
                f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})",
            )
        else:
            msg = err.get("msg", "invalid")
        parts.append((where, msg))
    first_param = parts[0][0] if parts else None
    message = "; ".join(f"{w}: {m}" if w else m for w, m in parts)
    return RequestError(message, first_param)


def parse_request(data: Any) -> ChatRequest:
    """Validate a decoded JSON body; a RequestError naming the field when it is not a chat request."""
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None
