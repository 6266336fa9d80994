"""The sample generator: deterministic, protocol-correct, true tool results, varied tool lists."""

from __future__ import annotations

import inspect
import json
from collections import Counter
from typing import Annotated, Literal  # the test tool's annotations, read by schema_of

import pytest

from agentune import catalogue
from agentune.catalogue import REGISTRY, execute, spec
from agentune.convert.sources import read_agent_flan as normalize
from agentune.protocol import react
from agentune.raw_data import AGENT_FLAN_FILES, formulas, records
from agentune.raw_data import sample as sample_data
from agentune.raw_data.config import SampleMix

REFERENCE_TOOLS = {
    "get_flight_number": ["departure", "destination", "date"],
    "get_ticket_price": ["flight_number", "date"],
    "calculator": ["a", "b", "operator"],
    "ArxivSearch.get_arxiv_article_information": ["query"],
}


def draw(seed) -> catalogue.Draw:
    return catalogue.Draw(seed, SampleMix())


def generated(file_name: str, n: int, seed: int = 0, mix: SampleMix | None = None) -> list[dict]:
    return list(sample_data.generate(file_name, n, seed, mix))


def offered(system: str) -> list[str]:
    return [t["name"] for t in react.tools_from_system(system) or []]


def test_catalogue_has_typed_tools_and_the_reference_ones():
    assert len(REGISTRY) >= 20
    for name, params in REFERENCE_TOOLS.items():
        assert list(spec(name)["parameters"]["properties"]) == params
        assert spec(name)["parameters"]["required"] == params
    types = Counter(p["type"] for s, _ in REGISTRY.values() for p in s["parameters"]["properties"].values())
    assert {"string", "number", "integer", "boolean", "array", "object"} <= set(types)
    assert any("enum" in p for s, _ in REGISTRY.values() for p in s["parameters"]["properties"].values())


def test_a_tools_schema_is_derived_from_its_signature_and_docstring():
    from agentune.catalogue.tool import schema_of

    def book(room: Literal["a", "b"], guests: list[Literal["x", "y"]] | None = None, nights: int = 1,
             note: str | None = None, extra: Annotated[dict, {"properties": {"k": {"type": "string"}}}] = None) -> str:  # fmt: skip
        """Book a room.

        More text that is not the description.

        Args:
            room: which room
            guests: who comes
            nights: how long
            note: anything else
            extra: more
        """

    assert schema_of(book, "hotel.book") == {
        "name": "hotel.book",
        "description": "Book a room.",
        "parameters": {"type": "object", "required": ["room"], "properties": {
            "room": {"type": "string", "description": "which room", "enum": ["a", "b"]},
            "guests": {"type": "array", "description": "who comes", "items": {"type": "string", "enum": ["x", "y"]}},
            "nights": {"type": "integer", "description": "how long", "default": 1},
            "note": {"type": "string", "description": "anything else"},
            "extra": {"type": "object", "description": "more", "properties": {"k": {"type": "string"}}}}},
    }  # fmt: skip

    def undocumented(x: int) -> int:
        """No Args section."""

    with pytest.raises(ValueError, match="parameter 'x' has no description"):
        schema_of(undocumented, "u")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_spec_matches_the_python_function(name):
    spec_, fn = REGISTRY[name]
    sig = inspect.signature(fn)
    props = spec_["parameters"]["properties"]
    assert list(sig.parameters) == list(props)
    for pname, p in sig.parameters.items():
        required = pname in spec_["parameters"]["required"]
        assert required == (p.default is inspect.Parameter.empty), pname
        if "default" in props[pname]:
            assert props[pname]["default"] == p.default
    assert name in catalogue.GENERATORS


def test_reference_scenarios_compute_true_results():
    fn = execute(
        "get_flight_number", {"departure": "Beijing", "destination": "Shanghai", "date": "2024-07-01"}
    )
    assert fn == execute(
        "get_flight_number", {"departure": "Beijing", "destination": "Shanghai", "date": "2024-07-01"}
    )
    assert isinstance(execute("get_ticket_price", {"flight_number": fn, "date": "2024-07-01"}), int)
    assert "InternLM2 Technical Report" in execute(
        "ArxivSearch.get_arxiv_article_information", {"query": "InternLM2 Technical Report"}
    )
    # (44232 + 13312 / (232 - 32)) * 5, one binary operation per calculator call
    tree = ("*", ("+", 44232, ("/", 13312, ("-", 232, 32))), 5)
    steps: list = []
    assert records._calc_steps(tree, steps) == pytest.approx((44232 + 13312 / (232 - 32)) * 5)
    assert [s[2] for s in steps] == ["-", "/", "+", "*"]
    assert records._render(tree) == "(44232 + 13312 / (232 - 32)) * 5"
    assert execute("calculator", {"a": 1, "b": 0, "operator": "/"}).startswith("Error")


def test_same_seed_same_bytes_other_seed_other_records():
    for name in AGENT_FLAN_FILES:
        a = [json.dumps(r) for r in generated(name, 20, seed=3)]
        assert a == [json.dumps(r) for r in generated(name, 20, seed=3)]
        assert a != [json.dumps(r) for r in generated(name, 20, seed=4)]
        # a larger corpus only appends records
        assert a[:10] == [json.dumps(r) for r in generated(name, 10, seed=3)]


def test_file_counts_add_up_for_the_full_release_size():
    counts = sample_data.file_counts(34442, SampleMix().files)
    assert sum(counts.values()) == 34442 and set(counts) == set(AGENT_FLAN_FILES)
    tflan = sum(v for k, v in counts.items() if "tflan" in k)
    assert 0 < tflan < 0.2 * 34442  # chat rewrites stay a minority


#: A tool's spec without its name -> its registry name (renamed records offer the same functions).
BY_SIGNATURE = {
    json.dumps({k: v for k, v in s.items() if k != "name"}, sort_keys=True): n
    for n, (s, _) in REGISTRY.items()
}


def offered_specs(system: str) -> list[dict]:
    return react.tools_from_system(system) or []


def original(spec_: dict) -> str:
    return BY_SIGNATURE[json.dumps({k: v for k, v in spec_.items() if k != "name"}, sort_keys=True)]


def check_react(rec: dict) -> Counter:
    """Every ReAct turn parses; calls use an offered tool with valid args; responses are true results."""
    conv = rec["conversation"]
    specs = {s["name"]: s for s in offered_specs(conv[0]["content"])}
    assert conv[0]["content"] == react.render_system(list(specs.values()))
    assert 1 <= len(specs) <= 5
    seen = Counter()
    seen["renamed"] += any(n not in REGISTRY for n, s in specs.items() if not formulas.is_formula(s))
    for i, m in enumerate(conv[1:], 1):
        if m["role"] != "assistant":
            continue
        reply = react.parse_reply(m["content"])
        assert reply.format_valid and not reply.hallucinated and not reply.problems, m["content"]
        seen[reply.kind] += 1
        if reply.kind == "call":
            assert reply.action in specs
            props = specs[reply.action]["parameters"]
            assert set(props["required"]) <= set(reply.args) <= set(props["properties"])
            if i + 1 < len(conv):
                offered_spec = specs[reply.action]
                if formulas.is_formula(offered_spec):
                    result = formulas.run(offered_spec, reply.args)
                    seen["formula"] += 1
                else:
                    result = execute(original(offered_spec), reply.args)
                assert conv[i + 1]["content"] == react.format_response(result)
    return seen


def test_tool_specs_are_distinct_without_their_names():
    assert len(BY_SIGNATURE) == len(REGISTRY)


def test_react_files_follow_the_protocol():
    kinds = Counter()
    for name in (
        "toolbench_react_10p.jsonl",
        "agent_instruct_react.jsonl",
        "toolbench_instruct_j1s1_3k.jsonl",
    ):
        for rec in generated(name, 150):
            normalize(rec)  # valid for the converter: roles, order, non-empty content, loss
            kinds += check_react(rec)
    assert kinds["call"] > 300 and kinds["final"] > 150
    assert 0.15 * 450 < kinds["renamed"] < 0.35 * 450  # a quarter offer the tools under other names


def test_single_turn_records_end_on_the_call():
    for rec in generated("toolbench_instruct_j1s1_3k.jsonl", 50):
        assert [m["role"] for m in rec["conversation"]] == ["system", "user", "assistant"]
        assert react.parse_reply(rec["conversation"][-1]["content"]).kind == "call"


def test_multi_step_records_feed_results_back():
    multi = [
        r
        for r in generated("agent_instruct_react.jsonl", 200)
        if sum(
            react.parse_reply(m["content"]).kind == "call"
            for m in r["conversation"]
            if m["role"] == "assistant"
        )
        >= 2
    ]
    assert len(multi) > 100
    for rec in multi:
        check_react(rec)
    names = {
        react.parse_reply(m["content"]).action
        for r in multi
        for m in r["conversation"]
        if m["role"] == "assistant"
    }
    assert {"calculator", "get_flight_number", "get_ticket_price"} <= names


def _declined_tool(final_answer: str, capability: dict[str, str]) -> str:
    """The catalogue tool a "Sorry, I can't <capability> ..." answer declines."""
    return capability[final_answer.removeprefix("Sorry, I can't ").split(" with the tools")[0]]


def test_negatives_offer_no_fitting_tool_and_answer_without_a_call():
    """Near misses offer tools of the request's own group (never the one it needs, never the calculator
    or a web search, which could serve it after all); the others offer tools of other groups only."""
    capability = {g(draw(0)).capability: n for n, g in catalogue.GENERATORS.items()}
    kinds = Counter()
    for rec in generated("toolbench_negative.jsonl", 300):
        conv = rec["conversation"]
        reply = react.parse_reply(conv[-1]["content"])
        assert reply.kind == "final" and len(conv) == 3
        specs = offered_specs(conv[0]["content"])
        if all(formulas.is_formula(t) for t in specs):
            kinds["formula"] += 1
            continue  # see test_formula_records_call_or_decline_among_tools_of_one_field
        tools = {original(t) for t in specs}
        assert "search_web" not in tools
        if not reply.final_answer.startswith("Sorry, I can't "):
            kinds["no_tool"] += 1
            continue
        needed = _declined_tool(reply.final_answer, capability)
        group = set(catalogue.GROUPS[records._GROUP_OF[needed]])
        assert needed not in tools, (needed, tools)
        kinds["near" if tools <= group else "unrelated"] += 1
        assert tools <= group - {"calculator"} or not tools & group, (needed, tools)
    assert kinds["near"] > 100 and kinds["unrelated"] > 30 and kinds["no_tool"] > 50, kinds


def test_the_choice_to_call_or_decline_follows_the_need_and_the_tool_names():
    """Every request's first call says "<need>; <the tool> can do that" (single calls, chains, flights,
    sessions), a decline "<need>; <every offered tool> cannot do that": the same opening, and the
    choice made right after the names."""
    seen = Counter()
    for name in ("toolbench_react_10p.jsonl", "toolbench_negative.jsonl", "agent_instruct_react.jsonl"):
        for rec in generated(name, 120):
            conv = rec["conversation"]
            names = ", ".join(offered(conv[0]["content"]))
            for i, m in enumerate(conv):
                if m["role"] != "assistant" or conv[i - 1]["role"] != "user":
                    continue
                if conv[i - 1]["content"].startswith("Response:"):
                    continue  # a later step of the same request
                reply = react.parse_reply(m["content"])
                if reply.kind == "call":
                    assert reply.thought.startswith("The user wants to "), reply.thought
                    assert f"; {reply.action} can do that." in reply.thought, reply.thought
                    seen["call"] += 1
                elif reply.kind == "final" and reply.final_answer.startswith("Sorry, I can't "):
                    assert reply.thought.startswith("The user wants to "), reply.thought
                    assert f"; {names} cannot do that," in reply.thought, (reply.thought, names)
                    seen["decline"] += 1
    assert seen["call"] > 150 and seen["decline"] > 60, seen


def test_sessions_share_one_tool_list_across_calls_declines_and_chat():
    kinds = Counter()
    capability = {g(draw(0)).capability: n for n, g in catalogue.GENERATORS.items()}
    for i in range(60):
        conv = records.rec_session(draw(i))
        check_react({"id": f"s{i}", "conversation": conv})
        offered_names = {t["name"] for t in offered_specs(conv[0]["content"])}
        replies = [react.parse_reply(m["content"]) for m in conv if m["role"] == "assistant"]
        assert sum(r.kind == "call" for r in replies) >= 2
        for r in replies:
            if r.kind == "call":
                assert r.action in offered_names
            elif r.final_answer.startswith("Sorry, I can't "):
                kinds["decline"] += 1
                assert _declined_tool(r.final_answer, capability) not in offered_names
            kinds[r.kind] += 1
    assert kinds["decline"] > 10 and kinds["call"] > 120, kinds


def test_tool_lists_and_values_vary():
    recs = generated("toolbench_instruct_j1s1_3k.jsonl", 400)
    systems = {r["conversation"][0]["content"] for r in recs}
    assert len(systems) > 250
    called = Counter(react.parse_reply(r["conversation"][-1]["content"]).action for r in recs)
    assert len(called) >= 25
    # the called tool sits at different positions of the offered list
    positions = Counter(
        offered(r["conversation"][0]["content"]).index(
            react.parse_reply(r["conversation"][-1]["content"]).action
        )
        for r in recs
    )
    assert len(positions) >= 4
    args = [r["conversation"][-1]["content"] for r in recs]
    assert len(set(args)) > 0.85 * len(args)  # argument values vary (small pools repeat a few)


#: Optional parameters with a default, each with (call without it, same call with it): both must run
#: and give different results, so a call that states the default-changing argument is never a no-op.
OPTIONAL_EFFECTS = {
    "get_stock_price": ({"symbol": "AAPL"}, {"currency": "EUR"}),
    "word_count": ({"text": "a b a c"}, {"unique": True}),
    "days_between": ({"start_date": "2024-01-01", "end_date": "2024-01-31"}, {"inclusive": True}),
    "get_population": ({"country": "Japan"}, {"year": 1990}),
    "geometry.circle_area": ({"radius": 3}, {"decimals": 4}),
    "statistics.average": ({"numbers": [1, 2, 9]}, {"kind": "median"}),
    "find_restaurants": ({"city": "Paris", "cuisine": "Thai"}, {"features": ["wifi", "parking"]}),
    "send_email": ({"to": "a@b.c", "subject": "s", "body": "b"}, {"cc": ["d@e.f"]}),
    "create_calendar_event": ({"title": "t", "date": "2024-01-01"}, {"attendees": ["Ann", "Bo"]}),
}


@pytest.mark.parametrize("name", sorted(OPTIONAL_EFFECTS))
def test_optional_parameters_change_the_result_and_are_left_out_unless_asked(name):
    base, extra = OPTIONAL_EFFECTS[name]
    plain, with_extra = execute(name, base), execute(name, {**base, **extra})
    assert "Error" not in str(plain) and "Error" not in str(with_extra)
    assert plain != with_extra
    # the generator fills the optional parameter only in some calls (the ones whose request asks for it)
    (key,) = extra
    tasks = [catalogue.GENERATORS[name](draw(f"opt:{i}")) for i in range(200)]
    share = sum(key in t.args for t in tasks) / len(tasks)
    assert 0.1 < share < 0.6, share
    assert all(execute(name, t.args) == REGISTRY[name][1](**t.args) for t in tasks[:20])


def test_sample_calls_mostly_leave_some_schema_parameter_out_or_nest_values():
    recs = generated("toolbench_instruct_j1s1_3k.jsonl", 400)
    calls = [react.parse_reply(r["conversation"][-1]["content"]) for r in recs]
    schemas = {s["name"]: s for r in recs for s in offered_specs(r["conversation"][0]["content"])}
    full = sum(set(c.args) == set(schemas[c.action]["parameters"]["properties"]) for c in calls)
    assert full < 0.8 * len(calls)  # most tools have optional parameters that requests rarely need
    kinds = Counter(type(v).__name__ for c in calls for v in c.args.values())
    assert kinds["list"] and kinds["dict"]
    nested = [
        v for c in calls for v in c.args.values() if isinstance(v, list) and v and isinstance(v[0], str)
    ]
    assert nested  # arrays of strings, not only of numbers
    # an unknown profile field is refused with the allowed names, like a real API
    assert "use any of" in execute("update_user_profile", {"user_id": 1, "profile": {"nickname": "x"}})


def test_tflan_records_are_plain_chat():
    for name in (
        "agent_instruct_tflan.jsonl",
        "toolbench_tflan_60p_r10r5u7.jsonl",
        "toolbench_tflan_cot_30p.jsonl",
    ):
        for rec in generated(name, 30):
            conv = rec["conversation"]
            assert conv[0]["content"] in records.PLAIN_SYSTEM
            assert all("Action:" not in m["content"] for m in conv)
            normalize(rec)


def test_the_evaluation_scenarios_are_never_generated():
    """No record holds a scenario's request or one of its calls, and no request names a paper that a
    scenario looks up, in any wording (`evalsets.scenarios` defines them once)."""
    from agentune.evalsets import scenarios

    step = react.format_call("", "calculator", {"a": 232, "b": 32, "operator": "-"})
    assert sample_data.is_reserved([{"role": "user", "content": "x"}, {"role": "assistant", "content": step}])
    assert sample_data.is_reserved([{"role": "user", "content": scenarios.requests()[-1]}])
    other = react.format_call("", "calculator", {"a": 233, "b": 32, "operator": "-"})
    assert not sample_data.is_reserved(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": other}]
    )
    for name in AGENT_FLAN_FILES:
        for rec in generated(name, 600):
            assert not sample_data.is_reserved(rec["conversation"])
            users = " ".join(m["content"] for m in rec["conversation"] if m["role"] == "user")
            assert "InternLM2" not in users and "LoRA: Low-Rank" not in users and "Look up LoRA" not in users


def test_spoken_values_are_converted_in_the_call(monkeypatch):
    """ "2 million", "5%" and "[3, 4]" in a request become 2000000, 0.05 and a JSON list in the call."""
    seen = Counter()
    for i in range(200):
        r = catalogue.Draw(i, SampleMix(spoken_share=1.0))
        for gen in (
            catalogue.GENERATORS["finance.compound_interest"],
            catalogue.GENERATORS["convert_currency"],
            catalogue.GENERATORS["statistics.average"],
            catalogue.GENERATORS["sort_numbers"],
        ):
            task = gen(r)
            amount = task.args.get("principal", task.args.get("amount"))
            if " million " in task.question:
                seen["million"] += 1
                assert amount >= 1_000_000 and f"{amount / 1e6:g} million" in task.question
            if "%" in task.question:
                seen["percent"] += 1
                assert f"{task.args['rate'] * 100:g}%" in task.question and task.args["rate"] < 1
            if "[" in task.question:
                seen["list"] += 1
                assert json.dumps(task.args["numbers"]).replace('"', "") in task.question
            execute(task.tool, task.args)
    assert seen["million"] > 10 and seen["percent"] > 100 and seen["list"] > 100, seen


def test_formula_tools_are_read_from_their_offered_spec():
    """A formula tool's name and parameter names are drawn per record; the call still computes the true
    result, required parameters are those without a default, and an optional one is passed exactly
    when the request asks for it."""
    names_seen: dict[str, set[str]] = {}
    for f in formulas.FORMULAS:
        all_names = [n for p in f.params for n in p.names]
        assert len(all_names) == len(set(all_names)), f.names[0]  # a name points to one parameter
        for i in range(40):
            r = draw(f"{f.names[0]}:{i}")
            v = formulas.variant(f, r)
            req = formulas.request(v, r)
            spec_ = v.spec()
            assert react.tools_from_system(react.render_system([spec_])) == [spec_]
            own_args = {k: req.args[n] for k, n in v.param_names.items() if n in req.args}
            assert formulas.run(spec_, req.args) == req.result == f.fn(**own_args)
            assert set(spec_["parameters"]["required"]) <= set(req.args)
            for p in f.params:
                if p.default is not None:
                    asked = p.ask.split("{")[0] in req.question
                    assert asked == (v.param_names[p.names[0]] in req.args), req.question
            names_seen.setdefault(f.names[0], set()).add(v.name)
    assert all(len(s) >= 2 for s in names_seen.values()), names_seen


def test_formula_records_call_or_decline_among_tools_of_one_field(monkeypatch):
    """With `mix.formula_share` set, formula records are that share of the single-call, single-turn and
    negative files; a call picks the formula the request needs among others of its field (true result,
    protocol as every record), a decline offers only others."""
    by_capability = {f.capability: f for f in formulas.FORMULAS}
    seen = Counter()
    for name in ("toolbench_react_10p.jsonl", "toolbench_instruct_j1s1_3k.jsonl", "toolbench_negative.jsonl"):
        for rec in generated(name, 200, mix=SampleMix(formula_share=0.3)):
            conv = rec["conversation"]
            specs = offered_specs(conv[0]["content"])
            if not all(formulas.is_formula(s) for s in specs):
                continue
            seen[name] += 1
            check_react(rec)
            reply = react.parse_reply(conv[2]["content"])
            need = reply.thought.removeprefix("The user wants to ").split(";")[0]
            subject = by_capability[need].subject
            assert {formulas._BY_DESCRIPTION[s["description"]].subject for s in specs} == {subject}
            if name == "toolbench_negative.jsonl":
                assert reply.kind == "final"
                assert by_capability[need].description not in {s["description"] for s in specs}
            else:
                assert reply.kind == "call"
                (called,) = [s for s in specs if s["name"] == reply.action]
                assert called["description"] == by_capability[need].description
    assert all(0.2 * 200 < seen[n] < 0.4 * 200 for n in seen) and len(seen) == 3, seen
