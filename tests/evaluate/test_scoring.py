"""The parser and every metric on hand-written replies; BFCL rules; suite files; the scenario loop."""

from __future__ import annotations

import json

import pytest

from agentune.core.errors import StageError
from agentune.evalsets.bfcl import convert_function, parse_jsonl
from agentune.evaluate.report import mcnemar
from agentune.evaluate.results import ModelRun, SampleResult
from agentune.evaluate.scoring import Expected, aggregate, call_exact, score_sample
from agentune.evaluate.suites import Scenario, _answer_found, load_heldout, over_budget, run_scenarios
from agentune.inference.generation import Generation
from agentune.protocol import react

CALC = {
    "name": "calculator",
    "description": "a op b",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}, "operator": {"type": "string"}},
        "required": ["a", "b", "operator"],
    },
}
EXP = Expected.call("calculator", {"a": 3, "b": 4, "operator": "+"}, CALC)


def score(text: str, exp: Expected = EXP, stopped: bool = True) -> dict:
    return score_sample(react.parse_reply(text), exp, stopped)


def test_valid_call_scores_one_everywhere():
    v = score(react.format_call("Add.", "calculator", {"a": 3, "b": 4, "operator": "+"}))
    assert v["format_valid"] == v["tool_name_acc"] == v["args_json_valid"] == v["call_em"] == 1.0
    assert v["args_em"] == 1.0 and v["no_hallucinated_response"] == 1.0 and v["stopped"] == 1.0
    assert v["irrelevance_no_call"] is None  # a call was expected


def test_string_arguments_are_not_json():
    # the reference base model's reply: query="..." instead of a JSON object
    v = score('Thought: add\nAction: calculator\nAction Input: a=3, b=4, operator="+"')
    assert v["tool_name_acc"] == 1.0
    assert v["args_json_valid"] == 0.0 and v["call_em"] == 0.0
    assert v["args_em"] == pytest.approx(1 / 4)  # only the name counts


def test_invented_response_is_hallucination_and_breaks_the_arguments():
    text = react.format_call("Add.", "calculator", {"a": 3, "b": 4, "operator": "+"}) + "\nResponse: 7"
    v = score(text)
    assert v["no_hallucinated_response"] == 0.0 and v["tool_name_acc"] == 1.0
    # lagent reads everything after `Action Input:` as the arguments: with the invented result behind
    # the JSON they do not parse, so the call fails in lagent and scores as no valid call here
    assert v["args_json_valid"] == 0.0 and v["call_em"] == 0.0


def test_no_stop_and_partial_args():
    v = score(react.format_call("Add.", "calculator", {"a": 3, "b": 5, "operator": "+"}), stopped=False)
    assert v["stopped"] == 0.0
    assert v["args_em"] == pytest.approx(3 / 4) and v["call_em"] == 0.0


def test_final_answer_and_irrelevance():
    final = react.format_final("No tool fits.", "I cannot do that.")
    v = score(final)
    assert v["format_valid"] == 1.0 and v["tool_name_acc"] == 0.0 and v["args_em"] == 0.0
    assert v["no_hallucinated_response"] is None
    irr = Expected(name=None, irrelevant=True)
    assert score(final, irr)["irrelevance_no_call"] == 1.0
    assert (
        score(react.format_call("x", "calculator", {"a": 1, "b": 2, "operator": "+"}), irr)[
            "irrelevance_no_call"
        ]
        == 0.0
    )


@pytest.mark.parametrize("garbage", ["", "\x00\x01 ����", "Action:", "Action Input: {}", "Thought: hmm"])
def test_garbage_scores_zero_without_crashing(garbage):
    v = score(garbage, stopped=False)
    assert v["format_valid"] == 0.0 and v["tool_name_acc"] == 0.0 and v["call_em"] == 0.0
    agg = aggregate([v, v])
    assert agg["n"] == 2 and agg["format_valid"] == 0.0 and agg["format_valid_n"] == 2


def test_bfcl_ast_rules():
    spec = convert_function(
        {
            "name": "area",
            "parameters": {
                "type": "dict",
                "properties": {
                    "base": {"type": "integer"},
                    "height": {"type": "float"},
                    "unit": {"type": "string"},
                    "dims": {"type": "tuple", "items": {"type": "integer"}},
                },
                "required": ["base", "height"],
            },
        }
    )
    assert spec["parameters"]["type"] == "object"
    assert spec["parameters"]["properties"]["height"]["type"] == "number"
    assert spec["parameters"]["properties"]["dims"] == {"type": "array", "items": {"type": "integer"}}
    exp = Expected(name="area", args={"base": [10], "height": [5.0], "unit": ["units", ""]}, spec=spec)

    def check(args, name="area"):
        return call_exact(react.parse_reply(react.format_call("t", name, args)), exp)[0]

    assert check({"base": 10, "height": 5})  # optional omitted ("" allowed), int accepted for float
    assert check({"base": 10, "height": 5.0, "unit": " Units"})  # strings normalised
    assert not check({"base": 10.0, "height": 5})  # integer must be an int
    assert not check({"base": 10})  # required missing
    assert not check({"base": 10, "height": 5, "colour": "red"})  # unknown parameter
    assert not check({"base": 11, "height": 5})  # value not allowed
    assert not check({"base": 10, "height": 5}, name="volume")  # wrong function


def test_malformed_suite_file_names_the_line(tmp_path):
    with pytest.raises(StageError, match=r"x\.jsonl:2"):
        parse_jsonl('{"id": 1}\n{not json\n', "x.jsonl")
    bad = tmp_path / "heldout.jsonl"
    bad.write_text('{"id": "a", "conversation": [{"role": "user", "content": "hi"}]}\n{"id": "b"}\n')
    with pytest.raises(StageError, match=r"heldout\.jsonl:2"):
        load_heldout(bad, 10)


def test_heldout_samples_from_reference_turns(tmp_path):
    from helpers import tool_conversation

    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(tool_conversation(i)) + "\n" for i in range(3)))
    samples = load_heldout(path, 100)
    assert len(samples) == 6  # a call turn and a final turn per record
    call = samples[0]
    assert call.expected.name == "calculator" and call.expected.args == {
        "a": [3],
        "b": [4],
        "operator": ["+"],
    }
    assert (
        call.messages[-1]["role"] == "user"
        and react.tools_from_system(call.messages[0]["content"])[0]["name"] == "calculator"
    )
    assert samples[1].expected.name is None and not samples[1].expected.irrelevant  # final after a Response

    # the budget check names the samples whose right reply does not fit (here: 1 token per character)
    longest = max(len(s.reference) for s in samples) + 1
    assert over_budget(samples, len, longest) == []
    over = over_budget(samples, len, longest - 1)
    assert over and over[0][1] == longest and over[0][0] in {s.id for s in samples}


def test_heldout_is_picked_and_reported_per_source(tmp_path):
    """`heldout_n` samples per training source; each source gets its own row (`heldout:<source>`), paired
    between models on that source's samples only."""
    from helpers import tool_conversation

    from agentune.evaluate.report import paired

    path = tmp_path / "heldout.jsonl"
    rows = [{**tool_conversation(i), "source": "agent-flan" if i < 10 else "own"} for i in range(13)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_heldout(path, 4)
    assert [s.source for s in samples] == ["agent-flan"] * 4 + ["own"] * 4
    assert len(load_heldout(path, 100)) == 26

    def rec(model_ok: bool, s) -> SampleResult:
        parsed = react.parse_reply("")
        verdicts = {"call_em": float(model_ok)}
        return SampleResult("heldout", s.id, 0, "", True, 0, parsed, s.expected, verdicts, source=s.source)

    records = {
        "base": ModelRun([rec(False, s) for s in samples]),
        "merged": ModelRun([rec(s.source == "own", s) for s in samples]),
    }
    assert paired(records, "base", "merged", "heldout:own", "call_em") == ([0.0] * 4, [1.0] * 4)
    assert paired(records, "base", "merged", "heldout", "call_em")[1].count(1.0) == 4


def test_dev_and_test_splits_are_disjoint_and_cover_everything(tmp_path):
    from helpers import tool_conversation

    from agentune.evaluate.suites import in_split

    keys = [f"rec_{i}" for i in range(2000)]
    dev = {k for k in keys if in_split(k, "dev")}
    test = {k for k in keys if in_split(k, "test")}
    assert not dev & test and dev | test == set(keys) and all(in_split(k, "all") for k in keys)
    assert 0.35 < len(dev) / len(keys) < 0.45
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(tool_conversation(i)) + "\n" for i in range(40)))
    ids = {s: {x.id.split("#")[0] for x in load_heldout(path, 1000, s)} for s in ("all", "dev", "test")}
    assert ids["dev"] and ids["test"] and not ids["dev"] & ids["test"]  # a record's turns stay together
    assert ids["dev"] | ids["test"] == ids["all"] and all(in_split(i, "dev") for i in ids["dev"])


def test_tool_schemas_render_in_one_key_order():
    """BFCL's key order (required first, type last) and the sample's render the same line; params keep order."""
    bfcl_style = {
        "required": ["b", "a"],
        "properties": {
            "b": {"enum": ["x", "y"], "description": "bee", "type": "string"},
            "a": {"items": {"type": "number"}, "description": "ay", "type": "array"},
        },
        "type": "object",
    }
    sample_style = {
        "type": "object",
        "properties": {
            "b": {"type": "string", "description": "bee", "enum": ["x", "y"]},
            "a": {"type": "array", "description": "ay", "items": {"type": "number"}},
        },
        "required": ["b", "a"],
    }
    system = react.render_system([{"name": "t", "description": "d", "parameters": bfcl_style}])
    assert system == react.render_system([{"name": "t", "description": "d", "parameters": sample_style}])
    line = system.splitlines()[1]
    assert line.index("'type': 'STRING'") < line.index("'description': 'bee'") < line.index("'enum'")
    assert line.index("'name': 'b'") < line.index("'name': 'a'")
    assert react.tools_from_system(system)[0]["parameters"] == bfcl_style  # parsed back: the same schema


class Replay:
    """Stands in for a model: replies with the given texts in order (the scenario loop's input)."""

    def __init__(self, texts):
        self.texts = list(texts)

    def generate(self, prompts):
        return [Generation(self.texts.pop(0), True, 5) for _ in prompts]


def test_scenario_loop_runs_tools_and_checks_answer():
    sc = Scenario("calc", ["calculator"], [("(2+3)*4?", [("calculator", {"a": 2, "b": 3, "operator": "+"}),
                                                         ("calculator", {"a": 5, "b": 4, "operator": "*"})], "20")])  # fmt: skip
    replies = [
        react.format_call("add", "calculator", {"a": 2, "b": 3, "operator": "+"}),
        react.format_call("mul", "calculator", {"a": 5, "b": 4, "operator": "*"}),
        react.format_final("done", "The result is 20."),
    ]
    records, cases = run_scenarios(Replay(replies), [sc], max_turns=6)
    assert cases[0].e2e_success == 1.0 and len(records) == 3
    assert all(r.verdicts["format_valid"] == 1.0 for r in records)


def test_scenario_tool_error_is_a_failed_step_not_a_crash(monkeypatch):
    from agentune.evaluate import suites as eval_suites

    def boom(**kwargs):
        raise RuntimeError("tool exploded")

    real = eval_suites.scenario_tools()
    monkeypatch.setattr(
        eval_suites, "scenario_tools", lambda: {**real, "calculator": (real["calculator"][0], boom)}
    )
    sc = Scenario(
        "calc", ["calculator"], [("2+3?", [("calculator", {"a": 2, "b": 3, "operator": "+"})], "5")]
    )
    replies = [react.format_call("add", "calculator", {"a": 2, "b": 3, "operator": "+"}),
               react.format_final("done", "5")]  # fmt: skip
    records, cases = run_scenarios(Replay(replies), [sc], max_turns=6)
    assert cases[0].e2e_success == 0.0
    assert "tool exploded" in records[0].tool_error
    assert records[0].to_json()["tool_error"] == "RuntimeError: tool exploded"


def test_turn_limit_and_answers():
    loop = [react.format_call("add", "calculator", {"a": 2, "b": 3, "operator": "+"})] * 3
    sc = Scenario(
        "calc", ["calculator"], [("2+3?", [("calculator", {"a": 2, "b": 3, "operator": "+"})], "5")]
    )
    records, cases = run_scenarios(Replay(loop), [sc], max_turns=3)
    assert len(records) == 3 and cases[0].e2e_success == 0.0
    assert _answer_found("221492.8", "It is 221,492.8.") and not _answer_found("221492.8", "221490")


def test_mcnemar():
    assert mcnemar([0] * 10, [1] * 10)[2] < 0.01
    assert mcnemar([1, 0], [1, 0])[2] == 1.0
