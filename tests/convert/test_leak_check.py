"""The leak check: evaluation items found in training stop `convert` (fixed suites) or are reported as
rates (held-out records); MinHash LSH finds reworded requests, exact calls match after normalisation."""

from __future__ import annotations

import json

import pytest
from helpers import BFCL_CACHE
from helpers.sources import run_stages, weather_record

from agentune.evalsets import scenarios
from agentune.evalsets.leak import TrainingIndex, call_key, shingles
from agentune.protocol import react

CALC = {"type": "function", "function": {"name": "calculator", "description": "a op b",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"},
                       "operator": {"type": "string"}}, "required": ["a", "b", "operator"]}}}  # fmt: skip


def call_record(question: str, tool: dict, args: dict) -> dict:
    return {"messages": [
        {"role": "user", "content": question},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": tool["function"]["name"], "arguments": json.dumps(args)}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "Done."}], "tools": [tool]}  # fmt: skip


def test_calls_match_after_normalisation_and_requests_by_shingles():
    assert call_key("f", {"q": " InternLM2  Technical Report", "n": 3}) == call_key(
        "f", {"n": 3.0, "q": "internlm2 technical report"}
    )
    assert call_key("f", {"q": "a"}) != call_key("g", {"q": "a"})
    index = TrainingIndex(threshold=0.8)
    train = [{"role": "user", "content": "Please help me search the InternLM2 Technical Report now."},
             {"role": "assistant", "content": react.format_call("", "search", {"query": "InternLM2"})},
             {"role": "user", "content": "Response: found it"},
             {"role": "assistant", "content": react.format_final("", "Found.")}]  # fmt: skip
    index.add("train.jsonl:7", train, react.DEFAULT_TOOL_RESULT)
    hits = index.check(
        "item",
        ["please help me search the InternLM2 technical report NOW"],
        [call_key("search", {"query": "internlm2"})],
    )
    assert {(h.kind, h.where) for h in hits} == {
        ("exact_call", "train.jsonl:7"),
        ("near_duplicate", "train.jsonl:7"),
    }
    assert not index.check(
        "item", ["What is the weather in Paris today?"], [call_key("search", {"query": "x"})]
    )
    assert not index.check("item", ["found it"], [])  # a tool result is no request
    assert len(shingles("one two")) == 1 and len(shingles("a b c d e")) == 3


def test_a_scenario_planted_in_a_users_file_stops_the_stage(tmp_path, monkeypatch, capsys):
    planted = call_record(
        "Calculate (44232 + 13312 / (232 - 32)) * 5.", CALC, {"a": 232, "b": 32, "operator": "-"}
    )
    files = {"own.jsonl": [weather_record(i) for i in range(5)] + [planted]}
    sources = [{"name": "own", "kind": "openai", "path": "data/sources/own.jsonl"}]
    assert run_stages(tmp_path, monkeypatch, sources, files, heldout_fraction=0.0) == 1
    err = capsys.readouterr().err
    assert "evaluation item(s) of a fixed suite are in the training data" in err
    assert "scenarios/calculator_reference: exact_call" in err and "data/sources/own.jsonl:6" in err
    assert "scenarios/calculator_reference: near_duplicate (Jaccard 1.00)" in err
    assert not (tmp_path / "out/converted").exists()
    # the same data passes when the scenarios are not a fixed suite of this pipeline
    assert (
        run_stages(
            tmp_path, monkeypatch, sources, files, heldout_fraction=0.0, leak_check={"fixed_suites": []}
        )
        == 0
    )


@pytest.mark.network
def test_a_bfcl_question_in_training_stops_the_stage(tmp_path, monkeypatch, capsys):
    from agentune.evalsets import bfcl

    (q,) = bfcl.load_category(bfcl.fetch_wheel(BFCL_CACHE), "simple_python", 1)
    name, accepted = next(iter(q["ground_truth"][0].items()))
    args = {k: v[0] for k, v in accepted.items() if v and v[0] != ""}
    tool = {"type": "function", "function": next(t for t in q["tools"] if t["name"] == name)}
    question = q["messages"][0]["content"]
    planted = call_record("Please " + question[0].lower() + question[1:], tool, args)  # one word more
    files = {"own.jsonl": [weather_record(i) for i in range(5)] + [planted]}
    sources = [{"name": "own", "kind": "openai", "path": "data/sources/own.jsonl"}]
    check = {"fixed_suites": ["bfcl"], "bfcl_cache_dir": str(BFCL_CACHE)}
    assert run_stages(tmp_path, monkeypatch, sources, files, heldout_fraction=0.0, leak_check=check) == 1
    err = capsys.readouterr().err
    assert (
        f"bfcl_simple_python/{q['id']}: exact_call" in err
        and f"bfcl_simple_python/{q['id']}: near_duplicate" in err
    )
    assert "data/sources/own.jsonl:6" in err


def test_the_sample_holds_no_scenario_and_held_out_rates_are_reported(tmp_path, monkeypatch):
    """The default data passes its own check; the held-out records of a templated source are reported
    with the share of their calls and requests that training also has."""
    files = {"own.jsonl": [weather_record(i) for i in range(60)]}
    sources = [
        {"name": "agent-flan", "kind": "agent-flan"},
        {"name": "own", "kind": "openai", "path": "data/sources/own.jsonl"},
    ]
    assert run_stages(tmp_path, monkeypatch, sources, files, heldout_fraction=0.3) == 0
    report = json.loads((tmp_path / "out/data.json").read_text())["leak_check"]
    assert report["scenarios"] == {"items": len(scenarios.reference_scenarios()), "hits": 0, "listed": []}
    own = report["heldout"]["own"]
    assert own["calls"] > 0 and 0 <= own["exact_call_rate"] <= 1 and 0 <= own["near_duplicate_rate"] <= 1
    assert report["heldout"]["agent-flan"]["requests"] > 0


@pytest.mark.parametrize("text", scenarios.requests())
def test_every_scenario_request_is_found_in_a_training_set_that_holds_it(text):
    index = TrainingIndex()
    index.add(
        "t:1",
        [{"role": "user", "content": text}, {"role": "assistant", "content": "x"}],
        react.DEFAULT_TOOL_RESULT,
    )
    assert index.near(text) == (1.0, "t:1")
