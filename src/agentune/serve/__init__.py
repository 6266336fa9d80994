"""Serve a model the pipeline made behind an OpenAI-compatible API, tool calls included.

    agentune serve --model models/merged                                   # 127.0.0.1:8000
    agentune serve --model models/base --adapter models/adapters/iter_200  # base + LoRA, unmerged
    AGENTUNE_API_KEY=... agentune serve --model models/merged --port 8001   # requires the key
    agentune serve --model models/merged --engine vllm                     # vLLM, on a GPU machine
    agentune serve --model models/gguf/agentune-q8_0.gguf --engine llama.cpp  # llama.cpp on a CPU

The model's provenance (chat template, tool-result convention) decides how prompts are rendered, so the
served model reads the prompts training wrote: lagent's ReAct protocol for `tools`, results the way
its data sent them. Concurrent requests are batched into shared forward passes; over `--max-queue`
waiting requests, new ones get HTTP 429. See docs/serve.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("agentune.serve")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentune serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        help="model folder (HF format): models/merged, models/base, ...; "
        "with --engine llama.cpp a GGUF file (models/gguf/agentune-q8_0.gguf)",
    )
    p.add_argument(
        "--adapter", default=None, help="a LoRA adapter folder (models/adapters/iter_N) to serve on --model"
    )
    p.add_argument(
        "--name", default="agentune", help="the model id clients send as `model` (default: %(default)s)"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--api-key-env", default="AGENTUNE_API_KEY",
                   help="environment variable holding the API key; when set, requests need "
                        "`Authorization: Bearer <key>` (default: %(default)s)")  # fmt: skip
    p.add_argument("--template", default=None, help="chatml | llama3 (default: from the model's provenance)")
    p.add_argument(
        "--max-batch", type=int, default=8, help="requests decoded together (default: %(default)s)"
    )
    p.add_argument(
        "--max-queue", type=int, default=64, help="requests waiting before 429 (default: %(default)s)"
    )
    p.add_argument("--batch-window-ms", type=float, default=20.0,
                   help="how long the first request of a batch waits for others (default: %(default)s)")  # fmt: skip
    p.add_argument("--no-prefix-cache", action="store_true",
                   help="recompute every prompt in full (by default the last prompt prefix's keys and values "
                        "are kept and reused)")  # fmt: skip
    p.add_argument("--max-tokens", type=int, default=256,
                   help="reply length when a request sets no max_tokens (default: %(default)s)")  # fmt: skip
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature when a request sets none; 0 is greedy (default: %(default)s)")  # fmt: skip
    p.add_argument("--engine", choices=("local", "llama.cpp", "vllm"), default="local",
                   help="local: this server, transformers decoding; llama.cpp: this server, llama.cpp decoding "
                        "of a GGUF (`make llama-cpp` installs it); vllm: start `vllm serve` with the model's "
                        "chat template and the project's tool parser (default: %(default)s)")  # fmt: skip
    p.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp: context length (default: %(default)s)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="llama.cpp: CPU threads (default: every core this process may use)",
    )
    p.add_argument("--reasoning-field", choices=("reasoning", "reasoning_content", "both"), default="reasoning",
                   help="where a reply's Thought goes when the request has tools: `reasoning` (current vLLM), "
                        "`reasoning_content` (older vLLM, llama.cpp, DeepSeek) or both (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true", help="with --engine vllm: print the command, run nothing"
    )
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default: %(default)s)")
    p.add_argument("--dtype", default="auto", help="float32 | bfloat16 | auto (default: %(default)s)")
    return p


def resolve_model(args: argparse.Namespace):
    """(model folder, adapter folder or None, chat template, tool-result style): the folders checked,
    the template and the tool-result convention read from the model's provenance."""
    from agentune.core.artifacts import recorded_template, recorded_tool_result
    from agentune.core.errors import StageError
    from agentune.protocol import react
    from agentune.protocol.templates import get_template

    model_dir = Path(args.model)
    if not (model_dir / "config.json").is_file():
        raise StageError(f"--model {model_dir}: no config.json there; give a model folder (HF format)")
    adapter = Path(args.adapter) if args.adapter else None
    if adapter and not (adapter / "adapter_config.json").is_file():
        raise StageError(f"--adapter {adapter}: no adapter_config.json there; give models/adapters/iter_N")
    provenance = adapter or model_dir
    template = get_template(
        args.template or recorded_template(provenance) or recorded_template(model_dir) or "chatml"
    )
    return model_dir, adapter, template, react.ToolResultStyle.load(recorded_tool_result(provenance))


def load_llama_cpp(args: argparse.Namespace):
    """(engine, template, tool-result style) for `--engine llama.cpp`: the GGUF's own metadata says both."""
    from agentune.core.errors import StageError
    from agentune.inference.llama_cpp import LlamaCppBackend
    from agentune.protocol.templates import get_template
    from agentune.serve.engine import LlamaCppEngine

    if args.adapter:
        raise StageError("--engine llama.cpp serves a GGUF; give the merged model's (models/gguf/*.gguf)")
    if Path(args.model).is_dir():
        raise StageError(
            f"--model {args.model}: --engine llama.cpp needs a GGUF file (models/gguf/agentune-q8_0.gguf)"
        )
    template = get_template(args.template) if args.template else None
    backend = LlamaCppBackend(args.model, template, args.max_tokens, n_ctx=args.n_ctx, n_threads=args.threads)
    engine = LlamaCppEngine(backend, args.max_batch, args.max_queue, args.batch_window_ms / 1000)
    return engine, Path(args.model), backend.template, backend.style


def load(args: argparse.Namespace):
    """(engine, options) for the parsed arguments: the model loaded, its provenance read."""
    from agentune.inference.generation import LocalBackend
    from agentune.serve.app import ServeOptions
    from agentune.serve.engine import Engine

    adapter = None
    if args.engine == "llama.cpp":
        engine, model_dir, template, style = load_llama_cpp(args)
    else:
        model_dir, adapter, template, style = resolve_model(args)
        backend = LocalBackend(model_dir, template, batch_size=args.max_batch, max_new_tokens=args.max_tokens,
                               device=args.device, dtype=args.dtype)  # fmt: skip
        if adapter:
            backend.use_adapter(adapter.name, adapter)  # merged into the weights while it serves
        engine = Engine(
            backend, args.max_batch, args.max_queue, args.batch_window_ms / 1000, not args.no_prefix_cache
        )
    opts = ServeOptions(
        model_name=args.name,
        style=style,
        api_key=os.environ.get(args.api_key_env) or None,
        default_max_tokens=args.max_tokens,
        default_temperature=args.temperature,
        reasoning_field=args.reasoning_field,
    )
    log.info("model %s%s, template %s, tool results as %s turns %r", model_dir,
             f" + adapter {adapter}" if adapter else "", template.name, style.role, style.prefix)  # fmt: skip
    return engine, opts


def vllm_command(args: argparse.Namespace, workdir: Path) -> list[str]:
    """`vllm serve` for the model, with its chat template (written to `workdir`) and the ReAct tool parser."""
    from agentune.core.errors import StageError
    from agentune.protocol.chat_template import chat_template, xtuner_template
    from agentune.serve import vllm_tool_parser

    if args.adapter:
        raise StageError(
            "--engine vllm serves merged weights: run export (models/merged), or use --engine local"
        )
    model_dir, _, template, style = resolve_model(args)
    jinja = workdir / "agentune_chat_template.jinja"
    jinja.write_text(chat_template(xtuner_template(template), template.bos, style), encoding="utf-8")
    return ["vllm", "serve", str(model_dir), "--host", args.host, "--port", str(args.port),
            "--served-model-name", args.name, "--chat-template", str(jinja), "--enable-auto-tool-choice",
            "--tool-parser-plugin", str(Path(vllm_tool_parser.__file__).resolve()),
            "--tool-call-parser", vllm_tool_parser.NAME]  # fmt: skip


def run_vllm(args: argparse.Namespace) -> int:
    """`agentune serve --engine vllm`: run (or print) `vllm serve` for the model."""
    import shlex
    import shutil
    import subprocess
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="agentune-vllm-"))
    cmd = vllm_command(args, workdir)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    if shutil.which("vllm") is None:
        print("agentune serve: error: `vllm` is not installed here; install vLLM on a GPU machine "
              f"(pip install vllm), or run: {shlex.join(cmd)}", file=sys.stderr)  # fmt: skip
        return 1
    env = dict(os.environ)
    if os.environ.get(args.api_key_env):  # vLLM reads its key from VLLM_API_KEY, never from argv
        env["VLLM_API_KEY"] = os.environ[args.api_key_env]
    log.info("running %s", shlex.join(cmd))
    return subprocess.call(cmd, env=env)


def main(argv: list[str] | None = None) -> int:
    """`agentune serve`: load the model and serve it until interrupted."""
    import uvicorn

    from agentune.core.errors import StageError
    from agentune.serve.app import create_app

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.engine == "vllm":
        try:
            return run_vllm(args)
        except StageError as exc:
            print(f"agentune serve: error: {exc}", file=sys.stderr)
            return 1
    try:
        engine, opts = load(args)
    except StageError as exc:
        print(f"agentune serve: error: {exc}", file=sys.stderr)
        return 1
    if opts.api_key:
        log.info("API key required (from $%s)", args.api_key_env)
    log.info("serving %r on http://%s:%d/v1", opts.model_name, args.host, args.port)
    try:
        uvicorn.run(create_app(engine, opts), host=args.host, port=args.port, log_level="info")
    finally:
        engine.close()
    return 0
