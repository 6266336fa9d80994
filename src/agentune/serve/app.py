"""The HTTP API: FastAPI routes over the engine, in OpenAI's chat-completions contract.

`GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (also without the `/v1` prefix). Every
error is an OpenAI-style body `{"error": {"message", "type", "param", "code"}}`: 400 for a body that is
not a valid request (naming the field), 401 for a missing or wrong API key, 404 for an unknown model or
route, 429 when the queue is full, 500 (never a dropped connection) for anything unexpected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentune import __version__
from agentune.protocol import react
from agentune.serve import render
from agentune.serve.constrain import plan_for
from agentune.serve.engine import Engine, Job, Result
from agentune.serve.schema import ChatRequest, RequestError, parse_request, validation_error

log = logging.getLogger(__name__)


@dataclass
class ServeOptions:
    model_name: str = "agentune"
    style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT
    api_key: str | None = None  # required as `Authorization: Bearer <key>` when set
    default_max_tokens: int = 256
    default_temperature: float = 0.0  # when a request sets none: greedy, as the model was evaluated
    # where a reply's Thought goes: `reasoning` (current vLLM, read by LiteLLM and LlamaIndex),
    # `reasoning_content` (older vLLM, llama.cpp's server, DeepSeek's API) or both
    reasoning_field: Literal["reasoning", "reasoning_content", "both"] = "reasoning"
    thoughts: render.Thoughts = field(default_factory=render.Thoughts)

    def shape(self, message: dict[str, Any]) -> dict[str, Any]:
        """`message` (from `render.reply_message`) with its Thought under the configured field(s);
        remembered for the call it came with, so the history is rendered with it."""
        self.thoughts.remember(message)
        thought = message.pop("reasoning", None)
        if thought is not None:
            names = (
                ("reasoning", "reasoning_content")
                if self.reasoning_field == "both"
                else (self.reasoning_field,)
            )
            message.update({name: thought for name in names})
        return message


def _error(exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def create_app(engine: Engine, opts: ServeOptions) -> FastAPI:
    """The FastAPI application serving `engine`'s model as `opts.model_name`."""
    app = FastAPI(title="agentune", version=__version__, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(validation_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = (
            f"no route {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return _error(RequestError(msg, status=exc.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(RequestError(f"internal error: {type(exc).__name__}: {exc}", status=500))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if opts.api_key and request.url.path not in ("/health", "/v1/health"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {opts.api_key}".encode()):
                return _error(
                    RequestError(
                        "missing or wrong API key: send `Authorization: Bearer <key>`",
                        status=401,
                        code="invalid_api_key",
                    )
                )
        return await call_next(request)

    @app.get("/health")
    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": opts.model_name, "waiting": engine.queue.qsize()}

    @app.get("/v1/models")
    @app.get("/models")
    async def models() -> dict[str, Any]:
        card = {"id": opts.model_name, "object": "model", "created": 0, "owned_by": "agentune"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions")
    async def chat(request: Request):
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON: {exc}") from None
        req = parse_request(data)
        if req.model != opts.model_name:
            raise RequestError(
                f"model {req.model!r} is not served here; this server serves {opts.model_name!r}",
                "model",
                status=404,
                code="model_not_found",
            )
        tools, choice = render.tool_specs(req), render.tool_choice(req)
        job = _job(engine, opts, req, choice)
        if req.stream:
            return StreamingResponse(
                _stream(engine, opts, req, job, tools, choice), media_type="text/event-stream"
            )
        result: Result = await asyncio.wrap_future(engine.submit(job))
        body = _completion(opts, req, result, tools, choice)
        if req.return_token_ids:  # as vLLM returns them: what the model was given, token for token
            body["prompt_token_ids"] = list(job.ids)
        return body

    return app


def _job(engine: Engine, opts: ServeOptions, req: ChatRequest, choice: str) -> Job:
    ids = engine.encode_prompt(render.prompt_messages(req, opts.style, opts.thoughts))
    ctx, asked = engine.context_length, req.max_new_tokens()
    if ctx and len(ids) >= ctx:
        raise RequestError(
            f"the prompt is {len(ids)} tokens; the model's context is {ctx}: shorten `messages` or `tools`",
            "messages",
            code="context_length_exceeded",
        )
    if ctx and asked and len(ids) + asked > ctx:
        field = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise RequestError(
            f"{field} {asked} + the prompt's {len(ids)} tokens exceed the model's context of {ctx}; "
            f"ask for at most {ctx - len(ids)}",
            field,
            code="context_length_exceeded",
        )
    max_new = asked or min(opts.default_max_tokens, (ctx - len(ids)) if ctx else opts.default_max_tokens)
    names = [t.function.name for t in req.tools or []]
    temperature = opts.default_temperature if req.temperature is None else req.temperature
    return Job(
        ids=ids,
        max_new_tokens=max_new,
        temperature=temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        seed=req.seed,
        stop_strings=req.stop_strings(),
        plan=plan_for(choice, names, engine.encode_text) if req.tools else None,
    )


def _usage(result: Result) -> dict[str, int]:
    return {
        "prompt_tokens": result.n_prompt,
        "completion_tokens": result.n_tokens,
        "total_tokens": result.n_prompt + result.n_tokens,
    }


def _finish(result: Result, message: dict[str, Any]) -> str:
    if result.finish == "length":
        return "length"
    return "tool_calls" if message.get("tool_calls") else "stop"


def _completion(
    opts: ServeOptions, req: ChatRequest, result: Result, tools: list[dict] | None, choice: str
) -> dict[str, Any]:
    message = opts.shape(render.reply_message(result.text, tools, choice))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": opts.model_name,
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish(result, message), "logprobs": None}
        ],
        "usage": _usage(result),
    }


async def _stream(
    engine: Engine, opts: ServeOptions, req: ChatRequest, job: Job, tools: list[dict] | None, choice: str
) -> AsyncIterator[str]:
    """Server-sent `chat.completion.chunk` events. Plain text streams token by token; when the model may
    call a tool, the reply is parsed whole first, then sent as deltas: its Thought (`reasoning`), then
    the content or the `tool_calls`."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    live = not tools or choice == "none"
    if live:
        job.on_text = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": opts.model_name}  # fmt: skip

    def event(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        )
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    try:
        future = engine.submit(job)
    except RequestError as exc:
        yield f"data: {json.dumps(exc.body())}\n\n"
        yield "data: [DONE]\n\n"
        return
    yield event({"role": "assistant", "content": ""})
    if live:
        while (piece := await pieces.get()) is not None:
            yield event({"content": piece})
    try:
        result: Result = await asyncio.wrap_future(future)
    except Exception as exc:  # the stream has started: the error goes as an event
        log.exception("generation failed")
        yield f"data: {json.dumps(RequestError(f'internal error: {exc}', status=500).body())}\n\n"
        yield "data: [DONE]\n\n"
        return
    message = opts.shape(render.reply_message(result.text, tools, choice))
    if not live:
        thought = {k: message[k] for k in ("reasoning", "reasoning_content") if k in message}
        if thought:
            yield event(thought)
        if message.get("content"):
            yield event({"content": message["content"]})
        if message.get("tool_calls"):
            yield event({"tool_calls": [{"index": 0, **message["tool_calls"][0]}]})
    yield event({}, _finish(result, message))
    if req.stream_options and req.stream_options.include_usage:
        yield event(None, usage=_usage(result))
    yield "data: [DONE]\n\n"


@contextlib.contextmanager
def serving(engine: Engine, opts: ServeOptions, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a background thread (uvicorn, a free port when `port` is 0); yield the base URL
    (`http://host:port/v1`). For tests, benchmarks and notebooks; `agentune serve` runs in the foreground."""
    import threading

    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, opts), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="agentune-http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
