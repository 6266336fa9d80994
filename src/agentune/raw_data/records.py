"""The sample's record builders: one conversation of each kind, built from the catalogue's requests
(`agentune.catalogue`) with true results from its functions. `BUILDERS` maps a kind (the record kind an
Agent-FLAN file holds, `sample.FILES`) to its builder; every builder draws from one `Draw`, whose `mix`
carries the sample's knobs (params `raw_data.sample.mix`).

Every ReAct turn is built with `agentune.protocol.react` (render_system / format_call / format_final /
format_response).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentune.catalogue import GENERATORS, GROUPS, TOOL_NAMES, Draw, Task, execute, spec
from agentune.catalogue.phrasing import CITIES, date_said, pick
from agentune.protocol import react
from agentune.raw_data import formulas
from agentune.raw_data.config import MULTI_KINDS, NEGATIVE_KINDS

_GROUP_OF = {t: g for g, ts in GROUPS.items() for t in ts}

PLAIN_SYSTEM = (
    "You are a helpful assistant.",
    "You are a helpful, concise assistant.",
    "You are a friendly assistant. Answer clearly.",
)


#: Requests that need no tool: (question, answer).
SMALL_TALK: tuple[tuple[str, str], ...] = (
    ("Hi! How are you?", "Hello! I'm doing well, thanks. How can I help you today?"),
    ("Thanks, that's all.", "You're welcome! Have a great day."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("How many days are in a week?", "A week has 7 days."),
    ("What color do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
    (
        "What is the boiling point of water at sea level in Celsius?",
        "Water boils at 100 degrees Celsius at sea level.",
    ),
    (
        "Write a haiku about autumn.",
        "Crisp leaves drift and fall, / amber light on quiet paths, / the year exhales slow.",
    ),
    ("What does CPU stand for?", "CPU stands for Central Processing Unit."),
    ("Give me a synonym for happy.", "A synonym for happy is joyful."),
    ("How many continents are there?", "There are seven continents."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system."),
    ("Can you explain what a noun is?", "A noun is a word that names a person, place, thing or idea."),
    ("Suggest a name for a pet cat.", "How about Luna? It is short, sweet and easy to call."),
    ("What language is spoken in Brazil?", "The official language of Brazil is Portuguese."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    (
        "What is photosynthesis in one sentence?",
        "Photosynthesis is how plants turn light, water and CO2 into sugar and oxygen.",
    ),
    ("Say hello in Spanish.", "Hello in Spanish is 'Hola'."),
    ("What is H2O?", "H2O is the chemical formula for water."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    (
        "Recommend a good habit for better sleep.",
        "Keep a regular schedule: go to bed and wake up at the same time every day.",
    ),
    ("What is the opposite of ancient?", "The opposite of ancient is modern."),
)

#: A decline's Thought (one phrasing, drawn like the others): the offered tools' names, then "cannot",
#: where a call's Thought has the tool's name, then "can" (`_first_call`). Three phrasings, two of
#: them opening with "none"/"no tool", declined less selectively on the dev split (benchmarks/experiments/2026-11-30-declining-and-finishing.md, B4 -> B7).
_NO_TOOL_THOUGHTS = ("The user wants to {cap}; {names} cannot do that, so I will answer directly.",)


# ---- record builders -------------------------------------------------------------------------------


def _msg(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content, "loss": role == "assistant"}


def _n_tools(r: Draw) -> int:
    weights = r.mix.tools_offered
    return r.choices(range(1, len(weights) + 1), weights=weights)[0]


def _toolset(r: Draw, needed: list[str], exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The needed tools plus random distractors, in random order."""
    k = max(_n_tools(r), len(needed))
    pool = [t for t in TOOL_NAMES if t not in needed and t not in exclude]
    names = list(needed) + r.sample(pool, k - len(needed))
    r.shuffle(names)
    return [spec(n) for n in names]


def _first_call(capability: str, tool: str, plan: str, args: dict[str, Any]) -> dict[str, Any]:
    """A request's first call. Its Thought says what the request needs, the offered tool that does it,
    then the plan. A decline starts the same way and names the tools that cannot (`_NO_TOOL_THOUGHTS`),
    so the choice between calling and declining is made after the need is written out."""
    thought = f"The user wants to {capability}; {tool} can do that. {plan}"
    return _msg("assistant", react.format_call(thought, tool, args))


def _call_turns(r: Draw, task: Task) -> tuple[list[dict[str, Any]], Any]:
    result = execute(task.tool, task.args)
    return [
        _first_call(task.capability, task.tool, task.thought, task.args),
        _msg("user", react.format_response(result)),
    ], result


def _final(answer: str, r: Draw) -> dict[str, Any]:
    thought = r.choice(("I now know the answer.", "The tool returned the result.", "I have the result."))
    return _msg("assistant", react.format_final(thought, answer))


def rec_react(r: Draw) -> list[dict[str, Any]]:
    task = GENERATORS[r.choice(TOOL_NAMES)](r)
    turns, result = _call_turns(r, task)
    return [
        _msg("system", react.render_system(_toolset(r, [task.tool]))),
        _msg("user", task.question),
        *turns,
        _final(task.answer(result), r),
    ]


def rec_j1s1(r: Draw) -> list[dict[str, Any]]:
    task = GENERATORS[r.choice(TOOL_NAMES)](r)
    return [
        _msg("system", react.render_system(_toolset(r, [task.tool]))),
        _msg("user", task.question),
        _first_call(task.capability, task.tool, task.thought, task.args),
    ]


_OP_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def _expr(r: Draw, depth: int) -> Any:
    """A random arithmetic tree: a number, or (op, left, right)."""
    if depth == 0 or r.random() < 0.3:
        return r.choice((r.randint(1, 99), r.randint(100, 9999), r.randint(1000, 60000)))
    op = r.choice("+-*/")
    return (op, _expr(r, depth - 1), _expr(r, depth - 1))


def _render(node: Any, parent: str | None = None, right: bool = False) -> str:
    if not isinstance(node, tuple):
        return str(node)
    op, a, b = node
    text = f"{_render(a, op)} {op} {_render(b, op, True)}"
    if parent and (
        _OP_PREC[op] < _OP_PREC[parent] or (right and _OP_PREC[op] == _OP_PREC[parent] and parent in "-/")
    ):
        return f"({text})"
    return text


def _calc_steps(node: Any, steps: list[tuple[Any, Any, str, Any]]) -> Any:
    """Post-order evaluation with the real calculator; records (a, b, op, result) per call."""
    if not isinstance(node, tuple):
        return node
    op, a, b = node
    va, vb = _calc_steps(a, steps), _calc_steps(b, steps)
    res = execute("calculator", {"a": va, "b": vb, "operator": op})
    steps.append((va, vb, op, res))
    return res


def rec_calc_chain(r: Draw) -> list[dict[str, Any]] | None:
    if r.random() < 0.15:  # the reference write-up's shape: (a + b / (c - d)) * e
        a, b, c, d, e = (
            r.randint(1000, 60000),
            r.randint(100, 20000),
            r.randint(100, 999),
            r.randint(1, 99),
            r.randint(2, 9),
        )
        tree: Any = ("*", ("+", a, ("/", b, ("-", c, d))), e)
    else:
        tree = (r.choice("+-*/"), _expr(r, r.randint(0, 2)), _expr(r, r.randint(1, 2)))
    steps: list[tuple[Any, Any, str, Any]] = []
    value = _calc_steps(tree, steps)
    if not isinstance(value, (int, float)) or any(isinstance(s[3], str) for s in steps) or abs(value) > 1e12:
        return None
    text = _render(tree)
    q = pick(
        r,
        f"What is {text}?",
        f"Calculate {text}.",
        f"Compute {text} step by step with the calculator.",
        f"Please work out {text}.",
    )
    msgs = [_msg("system", react.render_system(_toolset(r, ["calculator"]))), _msg("user", q)]
    for i, (a, b, op, res) in enumerate(steps):
        thought = f"Next I compute {a} {op} {b}."
        if i == 0:  # need first, as every first call; a need of its own, not a single sum's "do arithmetic"
            thought = (
                "The user wants to evaluate an expression step by step; calculator can do that. "
                f"First I compute {a} {op} {b}."
            )
        msgs += [
            _msg("assistant", react.format_call(thought, "calculator", {"a": a, "b": b, "operator": op})),
            _msg("user", react.format_response(res)),
        ]
    msgs.append(_msg("assistant", react.format_final("All steps are done.", f"{text} = {value}")))
    return msgs


def rec_flight_price(r: Draw) -> list[dict[str, Any]]:
    """Flight number -> ticket price, in one question or as a follow-up question."""
    dep, dst = r.sample(CITIES, 2)
    iso, said = date_said(r)
    tools = _toolset(r, ["get_flight_number", "get_ticket_price"])
    fn_args = {"departure": dep, "destination": dst, "date": iso}
    fn = execute("get_flight_number", fn_args)
    price_args = {"flight_number": fn, "date": iso}
    price = execute("get_ticket_price", price_args)
    step = f"the flight number from {dep} to {dst} on {iso}"
    # every request opens with its need, as a single call's Thought does (`_first_call`)
    need_fn = "The user wants to look up flights; get_flight_number can do that."
    need_price = "The user wants to look up ticket prices; get_ticket_price can do that."
    msgs = [_msg("system", react.render_system(tools))]
    if r.random() < 0.5:
        call_fn = react.format_call(
            f"The user wants to look up ticket prices, which needs the flight number; get_flight_number can "
            f"do that. First I need {step}.",
            "get_flight_number",
            fn_args,
        )
        call_price = react.format_call(
            f"Now I can get the price of {fn} on {iso}.", "get_ticket_price", price_args
        )
        msgs += [
            _msg(
                "user",
                pick(
                    r,
                    f"How much is a ticket from {dep} to {dst} on {said}?",
                    f"What does the flight from {dep} to {dst} on {said} cost?",
                ),
            ),
            _msg("assistant", call_fn),
            _msg("user", react.format_response(fn)),
            _msg("assistant", call_price),
            _msg("user", react.format_response(price)),
            _msg("assistant", react.format_final("I have the price.", f"Flight {fn} costs {price} USD.")),
        ]
    else:
        call_fn = react.format_call(f"{need_fn} I need {step}.", "get_flight_number", fn_args)
        call_price = react.format_call(
            f"{need_price} Now I can get the price of {fn} on {iso}.", "get_ticket_price", price_args
        )
        msgs += [
            _msg("user", f"What is the flight number from {dep} to {dst} on {said}?"),
            _msg("assistant", call_fn),
            _msg("user", react.format_response(fn)),
            _msg("assistant", react.format_final("I have the flight number.", f"The flight number is {fn}.")),
            _msg(
                "user",
                pick(
                    r,
                    "How much is a ticket for that flight?",
                    "And what is its ticket price?",
                    "What does that flight cost?",
                ),
            ),
            _msg("assistant", call_price),
            _msg("user", react.format_response(price)),
            _msg(
                "assistant",
                react.format_final("I have the price.", f"A ticket on {fn} costs {price} USD."),
            ),
        ]
    return msgs


def rec_two_tasks(r: Draw) -> list[dict[str, Any]]:
    """Two independent requests: in one question, or a follow-up question after the first answer."""
    t1_name, t2_name = r.sample(TOOL_NAMES, 2)
    t1, t2 = GENERATORS[t1_name](r), GENERATORS[t2_name](r)
    msgs = [_msg("system", react.render_system(_toolset(r, [t1.tool, t2.tool])))]
    turns1, res1 = _call_turns(r, t1)
    turns2, res2 = _call_turns(r, t2)
    if r.random() < 0.5:
        q2 = t2.question[0].lower() + t2.question[1:]
        msgs += [
            _msg("user", f"{t1.question.rstrip('.?!')}, and {q2}"),
            *turns1,
            *turns2,
            _msg(
                "assistant",
                react.format_final("I have both results.", f"{t1.answer(res1)} {t2.answer(res2)}"),
            ),
        ]
    else:
        msgs += [
            _msg("user", t1.question),
            *turns1,
            _final(t1.answer(res1), r),
            _msg("user", t2.question),
            *turns2,
            _final(t2.answer(res2), r),
        ]
    return msgs


def _decline(capability: str, tools: list[dict[str, Any]], r: Draw) -> dict[str, Any]:
    """The Final Answer of a request no offered tool can serve."""
    names = ", ".join(t["name"] for t in tools)
    return _msg(
        "assistant",
        react.format_final(
            r.choice(_NO_TOOL_THOUGHTS).format(cap=capability, names=names),
            f"Sorry, I can't {capability} with the tools I have ({names}), so I cannot answer this request.",
        ),
    )


def rec_session(r: Draw) -> list[dict[str, Any]]:
    """One tool list, three or four requests in a row: calls answered from their results, requests of a
    neighbouring tool that is not offered (declined), and small talk (answered directly). Many decisions
    share one system prompt, the costliest part of a record to train on."""
    offered = r.sample(TOOL_NAMES, r.choice((1, 2, 2, 3)))
    tools = [spec(n) for n in offered]
    near = [
        t for n in offered for t in GROUPS[_GROUP_OF[n]] if t not in offered and t not in _NEAR_MISS_EXCLUDED
    ]
    msgs = [_msg("system", react.render_system(tools))]
    kinds = ["call", "call"] + r.choices(("call", "decline", "chat"), weights=(40, 35, 25), k=r.randint(1, 2))
    r.shuffle(kinds)
    for kind in kinds:
        if kind == "call":
            task = GENERATORS[r.choice(offered)](r)
            turns, result = _call_turns(r, task)
            msgs += [_msg("user", task.question), *turns, _final(task.answer(result), r)]
        elif kind == "decline" and near:
            task = GENERATORS[r.choice(near)](r)
            msgs += [_msg("user", task.question), _decline(task.capability, tools, r)]
        else:
            q, answer = r.choice(SMALL_TALK)
            msgs += [
                _msg("user", q),
                _msg("assistant", react.format_final("I can answer this directly.", answer)),
            ]
    return msgs


def rec_react_multi(r: Draw) -> list[dict[str, Any]]:
    """A multi-step kind drawn by `mix.multi` (its keys: `MULTI_KINDS`)."""
    kind = r.choices(MULTI_KINDS, weights=[r.mix.multi[k] for k in MULTI_KINDS])[0]
    if kind == "calc":
        while (msgs := rec_calc_chain(r)) is None:
            pass
        return msgs
    if kind == "session":
        return rec_session(r)
    return rec_flight_price(r) if kind == "flight" else rec_two_tasks(r)


#: Kinds of negative record (`mix.negative` has their shares): `near` offers tools of the request's own domain that still
#: cannot serve it (how BFCL irrelevance is built: a plausible tool whose parameters the question could
#: fill), `unrelated` offers tools of other domains, `no_tool` is small talk that needs no tool.

#: Never offered as a near miss: tools that could serve other requests of their group after all
#: (arithmetic computes a BMI or an interest; a web search answers any question).
_NEAR_MISS_EXCLUDED = ("calculator", "search_web")


def _near_miss_tools(r: Draw, task: Task) -> list[dict[str, Any]]:
    """One to three tools of the request's own group that cannot serve it (every group has three or more
    such tools)."""
    siblings = [t for t in GROUPS[_GROUP_OF[task.tool]] if t != task.tool and t not in _NEAR_MISS_EXCLUDED]
    k = r.choices((1, 2, 3), weights=(60, 30, 10))[0]
    names = r.sample(siblings, min(k, len(siblings)))
    r.shuffle(names)
    return [spec(n) for n in names]


def rec_negative(r: Draw) -> list[dict[str, Any]]:
    kind = r.choices(NEGATIVE_KINDS, weights=[r.mix.negative[k] for k in NEGATIVE_KINDS])[0]
    if kind in ("near", "unrelated"):  # a real request, but no offered tool can serve it
        task = GENERATORS[r.choice(TOOL_NAMES)](r)
        if kind == "near":
            tools = _near_miss_tools(r, task)
        else:
            tools = _toolset(r, [], GROUPS[_GROUP_OF[task.tool]] + ("search_web",))
        return [
            _msg("system", react.render_system(tools)),
            _msg("user", task.question),
            _decline(task.capability, tools, r),
        ]
    # small talk or general knowledge: no tool is needed
    q, answer = r.choice(SMALL_TALK)
    tools = _toolset(r, [], ("search_web",))
    thought = r.choice(
        ("No tool is needed for this.", "I can answer this directly.", "This does not need any of the tools.")
    )
    return [
        _msg("system", react.render_system(tools)),
        _msg("user", q),
        _msg("assistant", react.format_final(thought, answer)),
    ]


# `mix.formula_share`: the share of the single-call, single-turn and negative records built from formula
# tools (`formulas`) instead of the catalogue: tools offered under drawn names and parameter names, to be
# read, not recalled. 0 by default: at 0.3 two dev runs (training seeds 0, 1) moved the metrics both
# ways, by about the spread between seeds (benchmarks/experiments/2026-11-30-declining-and-finishing.md, F1).


def rec_formula(r: Draw, answer: bool = True) -> list[dict[str, Any]]:
    """One formula call among up to two formulas of the same subject; with `answer`, its result and a
    Final Answer follow (else the record ends on the call, as j1s1 records do)."""
    f = r.choice(formulas.FORMULAS)
    v = formulas.variant(f, r)
    req = formulas.request(v, r)
    others = formulas.near_misses(f, r, r.choices((0, 1, 2), weights=(40, 40, 20))[0])
    tools = [v.spec(), *(formulas.variant(o, r).spec() for o in others)]
    r.shuffle(tools)
    msgs = [
        _msg("system", react.render_system(tools)),
        _msg("user", req.question),
        _first_call(f.capability, v.name, req.thought, req.args),
    ]
    if answer:
        msgs += [_msg("user", react.format_response(req.result)), _final(req.answer, r)]
    return msgs


def rec_formula_decline(r: Draw) -> list[dict[str, Any]]:
    """A request for one formula with only other formulas of its subject offered: declined."""
    f = r.choice(formulas.FORMULAS)
    req = formulas.request(formulas.variant(f, r), r)
    tools = [formulas.variant(o, r).spec() for o in formulas.near_misses(f, r, r.choice((1, 1, 2)))]
    return [
        _msg("system", react.render_system(tools)),
        _msg("user", req.question),
        _decline(f.capability, tools, r),
    ]


def _or_formula(
    build: Callable[[Draw], list[dict[str, Any]]],
    formula_build: Callable[[Draw], list[dict[str, Any]]],
) -> Callable[[Draw], list[dict[str, Any]]]:
    """`formula_build` for a `mix.formula_share` of the records, `build` for the others."""
    share = lambda r: r.mix.formula_share  # noqa: E731
    return lambda r: formula_build(r) if share(r) and r.random() < share(r) else build(r)


def rec_tflan(r: Draw, turns: int = 1, cot: bool = False) -> list[dict[str, Any]]:
    msgs = [_msg("system", r.choice(PLAIN_SYSTEM))]
    for _ in range(turns):
        task = GENERATORS[r.choice(TOOL_NAMES)](r)
        result = execute(task.tool, task.args)
        answer = task.answer(result)
        if cot:
            answer = f"To answer this I need to {task.capability}. {task.thought} {answer}"
        msgs += [_msg("user", task.question), _msg("assistant", answer)]
    return msgs


BUILDERS: dict[str, Callable[[Draw], list[dict[str, Any]]]] = {
    "react": _or_formula(rec_react, rec_formula),
    "react_multi": rec_react_multi,
    "j1s1": _or_formula(rec_j1s1, lambda r: rec_formula(r, answer=False)),
    "negative": _or_formula(rec_negative, rec_formula_decline),
    "tflan": lambda r: rec_tflan(r, 1),
    "tflan_multi": lambda r: rec_tflan(r, r.randint(2, 3)),
    "tflan_cot": lambda r: rec_tflan(r, r.randint(1, 2), cot=True),
}
