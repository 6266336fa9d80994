"""The vLLM tool-parser plugin and `agentune serve --engine vllm`. vLLM cannot run on these machines:
the plugin's parsing core is tested here on CPU (whole replies and token-by-token streaming agree with
the server's own parsing); its vLLM adapter class is tested only where vLLM can be imported."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from helpers.scripted_agent import CALL_ARGS, calculator_spec

from agentune.protocol import react
from agentune.serve import render
from agentune.serve.vllm_tool_parser import NAME, StreamState, parse_final

TOOLS = [calculator_spec()]
REPLIES = [
    react.format_call("I need the calculator.", "calculator", CALL_ARGS),
    react.format_final("I know the answer.", "7"),
    react.format_call("wrong tool", "get_weather", {"city": "Oslo"}),
    "Thought: t\nAction: calculator\nAction Input: a=3, b=4",
    'Thought: t\nAction: calculator\nAction Input: ```json\n{"a": 1, "b": 2, "operator": "*"}\n```',
    "Hello there, no protocol at all.",
    'Action: calculator\nAction Input: {"a": 1, "b": 1, "operator": "+"}',
]


@pytest.mark.parametrize("text", REPLIES)
def test_whole_replies_parse_as_the_server_parses_them(text):
    content, calls = parse_final(text, TOOLS)
    msg = render.reply_message(text, TOOLS, "auto")
    assert content == msg["content"]
    assert calls == [c["function"] for c in msg.get("tool_calls") or []]


@pytest.mark.parametrize("text", REPLIES)
@pytest.mark.parametrize("step", [1, 3, 7])
def test_streaming_sends_what_the_whole_reply_says(text, step):
    """Fed piece by piece (as vLLM feeds it), the stream sends the call once, the Thought as reasoning,
    a final answer alone as content, or the text as content."""
    state, sent, calls = StreamState(TOOLS), {"content": "", "reasoning": ""}, []
    for end in range(step, len(text) + step, step):
        out = state.feed(text[:end])
        if out and "tool_call" in out:
            calls.append(out["tool_call"])
        elif out:
            (key,) = out
            sent[key] += out[key]
    want_content, want_calls = parse_final(text, TOOLS)
    assert calls == want_calls
    whole = render.reply_message(text, TOOLS, "auto")
    if want_calls or whole.get("reasoning"):
        assert sent["reasoning"].strip() == whole.get("reasoning", "")
    if want_calls:
        assert sent["content"] == ""
    elif react.FINAL in text or f"\n{react.ACTION}" not in text and not text.startswith(react.ACTION):
        assert sent["content"] == want_content


def test_the_adapter_class_against_vllms_own_base_class():
    vllm = pytest.importorskip("vllm", reason="vLLM is not installable on these CPU machines")
    from agentune.serve import vllm_tool_parser

    assert issubclass(vllm_tool_parser.AgentuneReactToolParser, vllm_tool_parser._ToolParser)
    assert vllm_tool_parser._Manager.get_tool_parser(NAME) is vllm_tool_parser.AgentuneReactToolParser
    assert vllm.__version__


def test_engine_vllm_dry_run_names_the_template_and_the_plugin(tiny_base, tmp_path):
    out = subprocess.run([sys.executable, "-m", "agentune.serve", "--model", str(tiny_base), "--engine", "vllm",
                          "--dry-run", "--name", "tiny", "--port", "8011"], capture_output=True, text=True, check=True)  # fmt: skip
    cmd = shlex.split(out.stdout.strip().splitlines()[-1])
    assert cmd[:3] == ["vllm", "serve", str(tiny_base)]
    flags = {
        k: v for k, v in zip(cmd[3:], cmd[4:], strict=False) if k.startswith("--") and not v.startswith("--")
    }
    assert (
        flags["--served-model-name"] == "tiny"
        and flags["--port"] == "8011"
        and flags["--host"] == "127.0.0.1"
    )
    assert flags["--tool-call-parser"] == NAME and flags["--tool-parser-plugin"].endswith(
        "vllm_tool_parser.py"
    )
    assert "--enable-auto-tool-choice" in cmd
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    tok.chat_template = open(flags["--chat-template"]).read()
    text = tok.apply_chat_template([{"role": "user", "content": "3 + 4?"}], tools=[{"type": "function", "function": TOOLS[0]}],
                                   add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert react.render_system(TOOLS) in text and json.dumps(TOOLS[0]["name"])[1:-1] in text
