"""The Jinja chat template (`protocol.chat_template`) renders what the project renders, token for token:
`tokenizer.apply_chat_template(messages, tools=...)` against `serve.render` + xtuner's encoding, on the
sample tools, every BFCL tool, conversations with calls and results, and both templates and styles."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from agentune.catalogue import REGISTRY
from agentune.inference.generation import encode_prompt
from agentune.protocol import react
from agentune.protocol.chat_template import chat_template, xtuner_template
from agentune.protocol.templates import get_template
from agentune.serve import render
from agentune.serve.schema import parse_request

STYLES = (react.ToolResultStyle("user", "Response: "), react.ToolResultStyle("system", "Response:"))


def fn(spec: dict) -> dict:
    return {"type": "function", "function": spec}


def conversations() -> list[list[dict]]:
    calc = {"a": 3, "b": 4, "operator": "+"}
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "calculator", "arguments": json.dumps({**calc, "a": i})}}
             for i in (1, 2)]  # fmt: skip
    return [
        [{"role": "user", "content": "What's 3 + 4? It's \"easy\", isn't it?"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": "3 + 4?"},
        ],  # fmt: skip
        [
            {"role": "user", "content": "3 + 4?"},
            {"role": "assistant", "content": "I add.", "tool_calls": calls[:1]},
            {"role": "tool", "tool_call_id": "c1", "content": "7"},
        ],  # fmt: skip
        [
            {"role": "user", "content": "1+3 and 2+3?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c2", "content": "5"},
            {"role": "tool", "tool_call_id": "c1", "content": "4"},
            {"role": "assistant", "content": react.format_final("done", "4 and 5")},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Et 2 + 2 ?"},
        ],  # fmt: skip
        [
            {"role": "user", "content": "3 + 4?"},
            {"role": "assistant", "content": "I add.", "tool_calls": calls[:1]},
            {"role": "user", "content": "never mind"},
        ],  # an unanswered call  # fmt: skip
        [
            {"role": "user", "content": "3 + 4?"},
            {"role": "assistant", "content": react.format_call("t", "calculator", calc)},
            {"role": "system", "content": "Response:7\n"},
        ],  # lagent's own turns  # fmt: skip
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! What shall I compute?"},
            {"role": "user", "content": "1 + 3"},
            {"role": "assistant", "content": None, "tool_calls": calls[:1]},
            {"role": "tool", "tool_call_id": "c1", "content": "4"},
            {"role": "assistant", "content": "It is 4."},
            {"role": "user", "content": "Thanks"},
        ],  # plain-text answers, as OpenAI clients send them back: Final Answers when tools are offered  # fmt: skip
    ]


@pytest.fixture(scope="module", params=["chatml", "llama3"])
def tokenizer(request, tiny_base, tiny_base_llama3):
    return AutoTokenizer.from_pretrained(
        tiny_base if request.param == "chatml" else tiny_base_llama3
    ), request.param


def check(
    tok, name: str, style: react.ToolResultStyle, messages: list[dict], tools: list[dict] | None
) -> None:
    tpl = get_template(name)
    xt = xtuner_template(tpl)
    tok.chat_template = chat_template(xt, tpl.bos, style)
    req = parse_request({"model": "m", "messages": messages, **({"tools": tools} if tools else {})})
    ours = encode_prompt(render.prompt_messages(req, style), tok, xt)
    for m in messages:  # what vLLM hands the template: arguments as a mapping
        for c in m.get("tool_calls") or []:
            c["function"]["arguments"] = json.loads(c["function"]["arguments"])
    theirs = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True)
    if ours != theirs:
        a, b = tok.decode(ours), tok.decode(theirs)
        k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        pytest.fail(
            f"template differs at char {k}:\n ours   {a[max(0, k - 120) : k + 80]!r}\n theirs {b[max(0, k - 120) : k + 80]!r}"
        )


@pytest.mark.parametrize("style", STYLES, ids=["user", "system"])
def test_sample_tools_and_conversations(tokenizer, style):
    tok, name = tokenizer
    tools = [fn(REGISTRY[n][0]) for n in sorted(REGISTRY)]
    for k, messages in enumerate(conversations()):
        check(tok, name, style, json.loads(json.dumps(messages)), tools[k : k + 4] if k else tools)
        check(tok, name, style, json.loads(json.dumps(messages)), None)


def test_every_bfcl_tool(tokenizer, bfcl_tools):
    tok, name = tokenizer
    for i in range(0, len(bfcl_tools), 4):
        check(tok, name, STYLES[0], conversations()[0], [fn(t) for t in bfcl_tools[i : i + 4]])


def test_python_literal_strings():
    """The template writes strings as Python's str() does: quotes, backslashes, newlines, unicode."""
    tricky = ["plain", "it's", 'say "hi"', "both ' and \"", "back\\slash", "line\nbreak\ttab\r", "中文 ✓", ""]
    spec = {"name": "t", "description": tricky[1], "parameters": {"type": "object", "properties": {
        f"p{i}": {"type": "string", "description": s, "enum": [s]} for i, s in enumerate(tricky)}}}  # fmt: skip
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    tpl = get_template("chatml")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    text = env.from_string(
        chat_template(
            {"SYSTEM": "{system}", "INSTRUCTION": "{input}", "SUFFIX": "", "SUFFIX_AS_EOS": True},
            None,
            STYLES[0],
        )
    ).render(  # fmt: skip
        messages=[{"role": "user", "content": "q"}],
        tools=[fn(spec)],
        add_generation_prompt=True,
        bos_token="",
    )
    assert text == react.render_system([spec]) + "q"
    assert tpl.name == "chatml"
