"""`agentune serve` over real HTTP: the OpenAI contract, tool_choice enforced, streaming, batching, 429,
and bad input that never drops a connection. The tiny model (random weights) for the plumbing; the
scripted agent (tests/helpers/scripted_agent.py) where a test needs a real tool call."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers.gguf import ENGINES
from helpers.scripted_agent import CALL_ARGS, calculator_spec

from agentune.protocol import react
from agentune.serve import build_parser, load, render
from agentune.serve.app import serving
from agentune.serve.schema import parse_request

TOOLS = [{"type": "function", "function": calculator_spec()}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip


def start(model, *extra: str, env: dict | None = None, monkeypatch=None):
    args = build_parser().parse_args(["--model", str(model), "--name", "tiny", *extra])
    if env and monkeypatch:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    return load(args)


@pytest.fixture(scope="module", params=ENGINES)
def tiny_model(request) -> tuple:
    """(model, engine arguments): the tiny model for the built-in engine, its GGUF for llama.cpp."""
    if request.param == "local":
        return request.getfixturevalue("tiny_base"), ()
    return request.getfixturevalue("tiny_gguf"), ("--engine", "llama.cpp")


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model, extra = tiny_model
    engine, opts = start(model, "--max-tokens", "24", *extra)
    with serving(engine, opts) as url:
        yield url, engine
    engine.close()


@pytest.fixture(scope="module", params=ENGINES)
def agent(request):
    if request.param == "local":
        model, extra = request.getfixturevalue("scripted_agent"), ()
    else:
        model, extra = request.getfixturevalue("scripted_agent_gguf"), ("--engine", "llama.cpp")
    engine, opts = start(model, "--max-tokens", "160", *extra)
    with serving(engine, opts) as url:
        yield url
    engine.close()


def chat(url: str, **body) -> httpx.Response:
    body.setdefault("model", "tiny")
    body.setdefault("messages", [{"role": "user", "content": "What is 3 + 4?"}])
    return httpx.post(f"{url}/chat/completions", json=body, timeout=120)


def events(resp: httpx.Response) -> list[dict]:
    lines = [ln[len("data: ") :] for ln in resp.text.split("\n\n") if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]", resp.text[-300:]
    return [json.loads(x) for x in lines[:-1]]


def test_models_health_and_completion_shape(tiny):
    url, _ = tiny
    assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "tiny"
    assert httpx.get(url.removesuffix("/v1") + "/health").json()["status"] == "ok"
    body = chat(url, max_tokens=5).json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 5


def test_api_key_from_the_environment(tiny_model, monkeypatch):
    model, extra = tiny_model
    engine, opts = start(model, *extra, "--api-key-env", "AGENTUNE_TEST_SERVE_KEY", env={"AGENTUNE_TEST_SERVE_KEY": "sk-x"},
                         monkeypatch=monkeypatch)  # fmt: skip
    try:
        with serving(engine, opts) as url:
            denied = chat(url, max_tokens=2)
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
            ok = httpx.post(f"{url}/chat/completions", headers={"Authorization": "Bearer sk-x"}, timeout=60,
                            json={"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert ok.status_code == 200
            assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200  # health stays open
    finally:
        engine.close()


BAD = [
    ("malformed JSON", b'{"model": "tiny", "messages": [', 400, None),
    ("messages a string", {"messages": "hi"}, 400, "messages"),
    ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ("empty messages", {"messages": []}, 400, "messages"),
    (
        "tool result without a call",
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "c1", "content": "7"},
            ]
        },
        400,
        "messages[1].tool_call_id",
    ),  # fmt: skip
    ("negative max_tokens", {"max_tokens": -5}, 400, "max_tokens"),
    ("huge max_tokens", {"max_tokens": 10**9}, 400, "max_tokens"),
    ("huge max_completion_tokens", {"max_completion_tokens": 10**9}, 400, "max_completion_tokens"),
    (
        "prompt over the context",
        {"messages": [{"role": "user", "content": " ".join(map(str, range(5000)))}]},
        400,
        "messages",
    ),
    ("unknown model", {"model": "gpt-9"}, 404, "model"),
    ("temperature a word", {"temperature": "hot"}, 400, "temperature"),
    ("two choices", {"n": 2}, 400, "n"),
    (
        "tool_choice names no tool",
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}},
        400,
        "tool_choice.function.name",
    ),  # fmt: skip
    ("required without tools", {"tool_choice": "required"}, 400, "tool_choice"),
    (
        "unmappable tool",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
        400,
        "tools[0].function",
    ),  # fmt: skip
    (
        "call arguments not JSON",
        {
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                    ],
                },
            ]
        },
        400,
        "messages[1].tool_calls[0].function.arguments",
    ),  # fmt: skip
    ("body not an object", [1, 2], 400, None),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_a_4xx_naming_the_field(tiny, case):
    url, _ = tiny
    _, body, status, param = case
    if isinstance(body, bytes):
        resp = httpx.post(
            f"{url}/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    elif isinstance(body, list):
        resp = httpx.post(f"{url}/chat/completions", json=body)
    else:
        full = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **body}
        resp = httpx.post(f"{url}/chat/completions", json=full, timeout=60)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["param"] == param and err["message"] and err["type"]
    if param:
        assert param.split("[")[0].split(".")[0] in err["message"]


def test_random_bodies_never_drop_the_connection(tiny):
    """Fuzz: random JSON shapes and random bytes; every answer is HTTP with a JSON body, never a 5xx."""
    url, _ = tiny
    rng = random.Random(0)
    atoms = [None, True, 0, -1, 1.5, 10**12, "", "x", "user", "tool", [], {}]
    keys = ["model", "messages", "role", "content", "tools", "tool_choice", "max_tokens", "stream", "stop",
            "temperature", "top_p", "seed", "function", "name", "tool_calls", "parameters", "n"]  # fmt: skip

    def value(depth: int):
        if depth > 2 or rng.random() < 0.4:
            return rng.choice(atoms)
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 4))}

    with httpx.Client(timeout=60) as client:
        for i in range(60):
            if i % 6 == 0:
                content, headers = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))), {}
            else:
                body = value(0) if i % 3 else {"model": "tiny", "messages": value(1), "max_tokens": 2}
                content, headers = json.dumps(body).encode(), {"content-type": "application/json"}
            resp = client.post(f"{url}/chat/completions", content=content, headers=headers)
            assert resp.status_code < 500, (content, resp.text)
            assert resp.status_code == 200 or "error" in resp.json()
    assert httpx.get(f"{url}/models").status_code == 200


def test_tool_choice_is_enforced_in_the_reply(tiny):
    """Even a random model answers in the shape tool_choice asks for: the keywords and name are forced."""
    url, _ = tiny
    two = [*TOOLS, WEATHER]

    def reply(choice) -> str:
        msg = chat(url, tools=two, tool_choice=choice, max_tokens=200).json()["choices"][0]["message"]
        if msg.get("tool_calls"):  # a random model may write a JSON object by chance
            fn = msg["tool_calls"][0]["function"]
            return react.format_call(msg.get("reasoning") or "", fn["name"], json.loads(fn["arguments"]))
        return msg["content"]

    none = react.parse_reply(reply("none"))
    assert none.kind == "final", none
    named = reply({"type": "function", "function": {"name": "get_weather"}})
    assert named.startswith(react.THOUGHT) and f"\n{react.ACTION} get_weather\n{react.ACTION_INPUT}" in named
    required = react.parse_reply(reply("required"))
    assert required.action in ("calculator", "get_weather")
    auto = chat(url, tools=two, max_tokens=8).json()["choices"][0]
    assert auto["finish_reason"] == "length"  # auto: the random model's own text


def test_streaming_text_equals_the_whole_reply(tiny):
    url, _ = tiny
    whole = chat(url, max_tokens=12).json()["choices"][0]
    with httpx.stream("POST", f"{url}/chat/completions", timeout=60, json={"model": "tiny", "stream": True,
                      "max_tokens": 12, "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "What is 3 + 4?"}]}) as resp:  # fmt: skip
        assert resp.headers["content-type"].startswith("text/event-stream")
        resp.read()
        chunks = events(resp)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["message"]["content"]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == whole["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12


def test_stop_strings_and_seeded_sampling(tiny):
    url, _ = tiny
    text = chat(url, max_tokens=16).json()["choices"][0]["message"]["content"]
    cut = text[6:9]
    stopped = chat(url, max_tokens=16, stop=[cut]).json()["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["message"]["content"] == text[: text.index(cut)]
    a, b, c = (chat(url, max_tokens=16, temperature=1.0, top_p=0.9, seed=s).json() for s in (1, 1, 2))
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    assert a["choices"][0]["message"] != c["choices"][0]["message"]


def test_concurrent_requests_share_batches_and_match_one_at_a_time(tiny):
    url, engine = tiny
    questions = [f"What is {i} + {i * 3}?" for i in range(6)]
    ask = lambda q: chat(url, max_tokens=10, messages=[{"role": "user", "content": q}]).json()  # noqa: E731
    alone = [ask(q)["choices"][0]["message"]["content"] for q in questions]
    before = engine.batches
    with ThreadPoolExecutor(6) as pool:
        together = [r["choices"][0]["message"]["content"] for r in pool.map(ask, questions)]
    assert together == alone
    assert engine.batches - before < len(questions)  # some requests shared a forward pass


def test_over_capacity_is_429_not_a_hang(tiny_model):
    model, extra = tiny_model
    engine, opts = start(model, *extra, "--max-batch", "1", "--max-queue", "1", "--batch-window-ms", "0")
    try:
        with serving(engine, opts) as url, ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: chat(url, max_tokens=200).status_code, range(6)))
            assert 429 in codes and 200 in codes, codes
    finally:
        engine.close()


def test_a_tool_call_round_trip(agent):
    """The scripted agent calls the calculator: the reply is a tool call (its Thought in `reasoning`, no
    content), and the follow-up with the call and its result in OpenAI's shape gets the answer alone as
    content, its Thought in `reasoning`."""
    first = chat(agent, tools=TOOLS).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "calculator"
    assert json.loads(call["function"]["arguments"]) == CALL_ARGS
    assert first["message"]["content"] is None and first["message"]["reasoning"]
    follow = chat(agent, tools=TOOLS, messages=[
        {"role": "user", "content": "What is 3 + 4?"},
        {"role": "assistant", "content": first["message"]["content"], "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "7"}]).json()  # fmt: skip
    assert follow["choices"][0]["finish_reason"] == "stop"
    final = follow["choices"][0]["message"]
    assert final["content"] == "7" and final["reasoning"] and react.FINAL not in final["reasoning"]


def test_the_thought_of_a_call_is_rendered_back_into_the_history():
    """Clients send `tool_calls` back without the `reasoning`: the prompt still carries the Thought the
    model wrote (remembered by call id), or the one the client sends back."""
    specs = [calculator_spec()]
    thoughts = render.Thoughts()
    msg = render.reply_message(
        react.format_call("I need the calculator.", "calculator", CALL_ARGS), specs, "auto"
    )
    thoughts.remember(msg)
    call = msg["tool_calls"][0]
    history = [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": call["id"], "content": "7"}]  # fmt: skip
    req = parse_request({"model": "tiny", "messages": history, "tools": TOOLS})
    remembered = render.prompt_messages(req, thoughts=thoughts)
    assert react.parse_reply(remembered[2]["content"]).thought == "I need the calculator."
    history[1] = {**history[1], "reasoning_content": "Sent back."}
    sent = render.prompt_messages(parse_request({"model": "tiny", "messages": history, "tools": TOOLS}))
    assert react.parse_reply(sent[2]["content"]).thought == "Sent back."
    answered = [
        *history,
        {"role": "assistant", "content": "7", "reasoning": "It is 7."},
        {"role": "user", "content": "x"},
    ]
    out = render.prompt_messages(parse_request({"model": "tiny", "messages": answered, "tools": TOOLS}))
    assert out[4]["content"] == react.format_final("It is 7.", "7")


def test_replies_in_openais_shape():
    """With tools: a final answer's content is the answer alone, the Thought in `reasoning`; without
    tools (lagent renders the protocol itself) the text is unchanged."""
    specs = [calculator_spec()]
    final = react.format_final("I know it.", "7")
    assert render.reply_message(final, specs, "auto") == {
        "role": "assistant",
        "content": "7",
        "reasoning": "I know it.",
    }
    assert render.reply_message(final, None, "none") == {"role": "assistant", "content": final}
    assert render.reply_message("Final Answer: 7", specs, "auto") == {"role": "assistant", "content": "7"}


def test_several_calls_and_results_become_call_result_pairs(tiny):
    """Two calls in one assistant message, answered by two tool messages in a row (in the other order):
    the protocol calls one tool per turn, so the prompt has call/result pairs in the order of the results."""
    url, _ = tiny
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "calculator",
              "arguments": json.dumps({"a": i, "b": 1, "operator": "+"})}} for i in (1, 2)]  # fmt: skip
    messages = [{"role": "user", "content": "1 + 1 and 2 + 1?"}, {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c2", "content": "3"}, {"role": "tool", "tool_call_id": "c1", "content": "2"}]  # fmt: skip
    req = parse_request({"model": "tiny", "messages": messages, "tools": TOOLS})
    rendered = render.prompt_messages(req, react.ToolResultStyle("user", "Response: "))
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert react.parse_reply(rendered[2]["content"]).args == {"a": 2, "b": 1, "operator": "+"}
    assert rendered[3]["content"] == "Response: 3" and rendered[5]["content"] == "Response: 2"
    assert chat(url, tools=TOOLS, messages=messages, max_tokens=4).status_code == 200


def test_streamed_tool_call(agent):
    with httpx.stream("POST", f"{agent}/chat/completions", timeout=120, json={"model": "tiny", "stream": True,
                      "tools": TOOLS, "messages": [{"role": "user", "content": "What is 3 + 4?"}]}) as resp:  # fmt: skip
        resp.read()
        chunks = events(resp)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["function"]["name"] == "calculator"
    thought = [d["reasoning"] for d in deltas if d.get("reasoning")]
    assert len(thought) == 1 and not any(d.get("content") for d in deltas)
    assert json.loads(calls[0]["function"]["arguments"]) == CALL_ARGS
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_only_valid_calls_to_offered_tools_become_tool_calls():
    """A call to a tool that was not offered, or with arguments that are not a JSON object, is content."""
    specs = [calculator_spec()]
    good = react.format_call("t", "calculator", CALL_ARGS)
    assert render.reply_message(good, specs, "auto")["tool_calls"][0]["function"]["name"] == "calculator"
    for text in (react.format_call("t", "get_weather", {"city": "Oslo"}),
                 'Thought: t\nAction: calculator\nAction Input: a=3, b=4',
                 'Thought: t\nAction: calculator\nAction Input: [3, 4]'):  # fmt: skip
        msg = render.reply_message(text, specs, "auto")
        assert "tool_calls" not in msg and msg["content"] == text
    assert "tool_calls" not in render.reply_message(good, specs, "none")


def test_system_turns_keep_their_place_and_lagent_results_follow_the_training_convention():
    """Leading system messages join the tool prompt; a later one stays in place; lagent's tool result
    (a system turn `Response:...` after a call) is rendered the way the model's data sent results."""
    call = react.format_call("t", "calculator", CALL_ARGS)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "3 + 4?"},
                {"role": "assistant", "content": call}, {"role": "system", "content": "Response:7\n"},
                {"role": "assistant", "content": react.format_final("t", "7")},
                {"role": "system", "content": "Answer in French from now on."}, {"role": "user", "content": "5 + 5?"}]  # fmt: skip
    req = parse_request({"model": "m", "messages": messages, "tools": TOOLS})
    for style in (react.ToolResultStyle("user", "Response: "), react.ToolResultStyle("system", "Response:")):
        out = render.prompt_messages(req, style)
        assert out[0]["role"] == "system" and out[0]["content"].endswith("\nBe brief.")
        assert out[3] == style.message("7")
        assert out[5] == {"role": "system", "content": "Answer in French from now on."}


def test_base_plus_adapter_serves_what_the_merged_model_serves(tiny_base, tmp_path):
    """`--adapter`: the base with a LoRA adapter (PEFT, unmerged on disk) answers exactly as the same
    adapter merged into the weights and served alone."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    lora = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    adapter = tmp_path / "iter_1"
    lora.save_pretrained(adapter)
    merged = tmp_path / "merged"
    shutil.copytree(tiny_base, merged)
    lora.merge_and_unload().save_pretrained(merged, safe_serialization=True)

    replies = []
    for model, *extra in ((tiny_base, "--adapter", str(adapter)), (merged,), (tiny_base,)):
        engine, opts = start(model, *extra, "--max-tokens", "12")
        try:
            with serving(engine, opts) as url:
                replies.append(chat(url).json()["choices"][0]["message"]["content"])
        finally:
            engine.close()
    with_adapter, merged_reply, plain = replies
    assert with_adapter == merged_reply != plain


def test_serve_refuses_a_folder_that_is_not_a_model(tmp_path):
    from agentune.serve import main

    assert main(["--model", str(tmp_path)]) == 1
    assert main(["--model", str(tmp_path), "--engine", "vllm", "--dry-run"]) == 1
