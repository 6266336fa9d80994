"""The OpenAI-compatible endpoint backend over real HTTP against `agentune.serve` on 127.0.0.1."""

from __future__ import annotations

import pytest
from helpers import tool_conversation

from agentune.evalsets.scenarios import reference_scenarios
from agentune.evaluate.scoring import Expected
from agentune.evaluate.suites import Sample, run_scenarios, run_single
from agentune.inference.generation import EndpointBackend, LocalBackend, react_to_openai_messages
from agentune.protocol import react
from agentune.protocol.templates import get_template
from agentune.serve import build_parser, load, render
from agentune.serve.app import serving
from agentune.serve.schema import parse_request


@pytest.fixture(scope="module")
def served(tiny_base):
    """The tiny model served by `agentune serve` on a free 127.0.0.1 port (thread), plus a local twin."""
    local = LocalBackend(tiny_base, get_template("chatml"), batch_size=4, max_new_tokens=16)
    engine, opts = load(
        build_parser().parse_args(["--model", str(tiny_base), "--name", "tiny", "--max-tokens", "16"])
    )
    with serving(engine, opts) as url:
        yield url, local
    engine.close()


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
    assert [r.output for r in remote_recs] == [r.output for r in local_recs]
    assert all(r.n_tokens > 0 for r in remote_recs)
    sc = reference_scenarios()[:2]
    r_steps, r_cases = run_scenarios(remote, sc, max_turns=2)
    l_steps, _ = run_scenarios(local, sc, max_turns=2)
    assert [r.output for r in r_steps] == [r.output for r in l_steps]
    assert len(r_cases) == 2 and all(c.e2e_success in (0.0, 1.0) for c in r_cases)


def test_evaluation_messages_round_trip_through_the_server_rendering():
    """What the endpoint backend sends (tool_calls, tool messages) renders back to the protocol
    conversation it came from: evaluation through the server prompts as local evaluation does."""
    conv = tool_conversation(0)["conversation"][:4]
    calc = react.tools_from_system(conv[0]["content"])[0]
    api = react_to_openai_messages(conv)
    assert [m["role"] for m in api] == ["user", "assistant", "tool"]
    req = parse_request({"model": "m", "messages": api, "tools": [{"type": "function", "function": calc}]})
    back = render.prompt_messages(req)
    assert [(m["role"], m["content"]) for m in back] == [(m["role"], m["content"]) for m in conv]


def test_endpoint_down_is_a_clear_error():
    from agentune.core.errors import StageError

    backend = EndpointBackend("http://127.0.0.1:9/v1", "x", api_key_env=None, timeout_s=2)
    with pytest.raises(StageError, match="127.0.0.1:9.*server running"):
        backend.generate([([{"role": "user", "content": "hi"}], None)])
