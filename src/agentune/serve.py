"""Serve a local model over an OpenAI-compatible chat-completions API, tool calls included.

    python -m agentune.serve --model models/merged --port 8000     # binds 127.0.0.1 by default

Requests with `tools` are rendered with lagent's ReAct system prompt (`react.render_system`), earlier
`tool_calls` become `Action:` turns and `tool` messages become tool-result turns in the convention the
model's training data used (recorded in its provenance), the prompt is built as training built it,
and a reply that parses as a call comes back as `tool_calls` (finish_reason "tool_calls"); anything
else as `content`. A tool spec that cannot be written in the protocol is a 400 naming the tool.
Greedy decoding; one request at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentune.core.artifacts import recorded_template, recorded_tool_result
from agentune.protocol import react

log = logging.getLogger(__name__)


def detect_template(model_dir: Path) -> str:
    """The chat template name recorded in the model's provenance (base, merged or adapter), default chatml."""
    return recorded_template(model_dir) or "chatml"


def to_protocol_messages(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT,
) -> list[dict]:
    """OpenAI messages (+ tools) -> protocol messages (system/user/assistant text only); `tool` results
    become turns in `style`, the way the model's training data sent them."""
    out: list[dict[str, str]] = []
    extra_system = [m.get("content") or "" for m in messages if m.get("role") == "system"]
    if tools:
        system = react.render_system(tools)
        if any(extra_system):
            system += "\n" + "\n".join(s for s in extra_system if s)
        out.append({"role": "system", "content": system})
    elif any(extra_system):
        out.append({"role": "system", "content": "\n".join(extra_system)})
    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if role == "system":
            continue
        if role == "assistant" and m.get("tool_calls"):
            fn = m["tool_calls"][0].get("function", {})
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {}
            out.append(
                {
                    "role": "assistant",
                    "content": react.format_call(content.strip(), fn.get("name", ""), args),
                }
            )
        elif role == "tool":
            out.append(style.message(content))
        elif role in ("user", "assistant"):
            out.append({"role": role, "content": content})
    return out


def completion(text: str, stopped: bool, n_prompt: int, n_gen: int, model: str) -> dict[str, Any]:
    """A chat.completion object; a protocol call becomes a `tool_calls` entry."""
    parsed = react.parse_reply(text)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop" if stopped else "length"
    if parsed.kind == "call" and parsed.args is not None:
        message = {
            "role": "assistant",
            "content": parsed.thought or "",
            "tool_calls": [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                            "function": {"name": parsed.action, "arguments": json.dumps(parsed.args)}}],
        }  # fmt: skip
        finish = "tool_calls" if stopped else "length"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "total_tokens": n_prompt + n_gen},
    }


def make_server(
    backend,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT,
) -> ThreadingHTTPServer:
    """An HTTP server answering /v1/chat/completions and /v1/models with `backend` (a LocalBackend)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, obj: dict[str, Any]) -> None:
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            elif self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                tools = [t["function"] if "function" in t else t for t in req.get("tools") or []] or None
                msgs = to_protocol_messages(req["messages"], tools, style)
            except (json.JSONDecodeError, KeyError, TypeError, react.ToolSpecError) as exc:
                self._send(400, {"error": {"message": f"bad request: {exc}"}})
                return
            with lock:
                saved = backend.max_new_tokens
                backend.max_new_tokens = int(req.get("max_tokens") or saved)
                try:
                    gen = backend.generate([(msgs, tools)])[0]
                    n_prompt = len(backend.encode(msgs))
                finally:
                    backend.max_new_tokens = saved
            self._send(
                200, completion(gen.text, gen.stopped, n_prompt, gen.n_tokens, req.get("model", model_name))
            )

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    from agentune.inference.generation import LocalBackend
    from agentune.protocol.templates import get_template

    p = argparse.ArgumentParser(prog="python -m agentune.serve", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model directory (HF format), e.g. models/merged")
    p.add_argument("--template", default=None, help="chatml | llama3 (default: from the model's provenance)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--name", default="agentune", help="model name reported by the API")
    p.add_argument("--max-new-tokens", type=int, default=256)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    model_dir = Path(args.model)
    backend = LocalBackend(model_dir, get_template(args.template or detect_template(model_dir)), batch_size=1,
                           max_new_tokens=args.max_new_tokens)  # fmt: skip
    style = react.ToolResultStyle.load(recorded_tool_result(model_dir))
    server = make_server(backend, args.name, args.host, args.port, style)
    log.info("serving %s on http://%s:%d/v1", model_dir, args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
