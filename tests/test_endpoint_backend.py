"""The OpenAI-compatible endpoint backend over real HTTP against `agentune.serve` on 127.0.0.1."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from conftest import tool_conversation

from agentune.evaluate.scoring import Expected
from agentune.evaluate.suites import Sample, reference_scenarios, run_scenarios, run_single
from agentune.inference.generation import EndpointBackend, LocalBackend, react_to_openai_messages
from agentune.protocol import react
from agentune.protocol.templates import get_template
from agentune.serve import completion, make_server, to_protocol_messages


@pytest.fixture(scope="module")
def served(tiny_base):
    """The tiny model served by agentune.serve on a free 127.0.0.1 port (thread), plus a local twin."""
    local = LocalBackend(tiny_base, get_template("chatml"), batch_size=4, max_new_tokens=16)
    server = make_server(local, "tiny", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address
    yield f"http://{host}:{port}/v1", local
    server.shutdown()
    server.server_close()


def samples() -> list[Sample]:
    out = []
    for i in range(3):
        conv = tool_conversation(i)["conversation"]
        tools = react.tools_from_system(conv[0]["content"])
        out.append(Sample("heldout", f"r{i}", conv[:2], tools, Expected.call("calculator", {"a": 3 + i})))
    return out


@pytest.mark.parametrize("mode", ["native", "react"])
def test_endpoint_suites_match_local_generation(served, mode, monkeypatch):
    """Same model, same prompts: the endpoint's replies equal local generation, in both tool modes."""
    url, local = served
    monkeypatch.setenv("AGENTUNE_TEST_KEY", "sk-test")
    remote = EndpointBackend(url, "tiny", api_key_env="AGENTUNE_TEST_KEY", tool_mode=mode, max_new_tokens=16)
    remote_recs = run_single(remote, samples())
    local_recs = run_single(local, samples())
    assert [r["output"] for r in remote_recs] == [r["output"] for r in local_recs]
    assert all(r["n_tokens"] > 0 for r in remote_recs)
    sc = reference_scenarios()[:2]
    r_steps, r_cases = run_scenarios(remote, sc, max_turns=2)
    l_steps, _ = run_scenarios(local, sc, max_turns=2)
    assert [r["output"] for r in r_steps] == [r["output"] for r in l_steps]
    assert len(r_cases) == 2 and all(c["e2e_success"] in (0.0, 1.0) for c in r_cases)


def test_server_speaks_openai_tool_calls(served):
    """A protocol call comes back as tool_calls; tool_calls/tool history turns round-trip to the protocol."""
    url, _ = served
    calc = react.tools_from_system(tool_conversation(0)["conversation"][0]["content"])[0]
    resp = httpx.post(f"{url}/chat/completions", json={"model": "tiny", "max_tokens": 8, "messages": [
        {"role": "user", "content": "What is 3 + 4?"}], "tools": [{"type": "function", "function": calc}]})  # fmt: skip
    body = resp.json()
    assert resp.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")
    assert body["usage"]["completion_tokens"] > 0
    assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "tiny"

    call = completion(
        react.format_call("Add.", "calculator", {"a": 3, "b": 4, "operator": "+"}), True, 10, 5, "m"
    )
    msg = call["choices"][0]["message"]
    assert call["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["tool_calls"][0]["function"]["name"] == "calculator"
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"a": 3, "b": 4, "operator": "+"}
    final = completion(react.format_final("t", "7"), False, 10, 5, "m")["choices"][0]
    assert final["finish_reason"] == "length" and "Final Answer: 7" in final["message"]["content"]

    conv = tool_conversation(0)["conversation"][:4]
    api = react_to_openai_messages(conv)
    assert [m["role"] for m in api] == ["user", "assistant", "tool"]
    back = to_protocol_messages(api, [calc])
    assert [(m["role"], m["content"]) for m in back] == [(m["role"], m["content"]) for m in conv]


def test_endpoint_down_is_a_clear_error():
    from agentune.core.errors import StageError

    backend = EndpointBackend("http://127.0.0.1:9/v1", "x", api_key_env=None, timeout_s=2)
    with pytest.raises(StageError, match="127.0.0.1:9.*server running"):
        backend.generate([([{"role": "user", "content": "hi"}], None)])


def test_server_answers_400_naming_a_tool_that_cannot_be_mapped(served):
    url, _ = served
    bad = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "array"}}}
    resp = httpx.post(f"{url}/chat/completions", json={"model": "tiny", "messages": [
        {"role": "user", "content": "hi"}], "tools": [bad]})  # fmt: skip
    assert resp.status_code == 400
    assert "tool 'lookup': 'parameters' must be an object schema" in resp.json()["error"]["message"]
    assert httpx.get(f"{url}/models").status_code == 200  # the server keeps answering
