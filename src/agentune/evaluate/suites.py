"""Evaluation suites: held-out records, the reference scenarios (real tools, multi-turn) and BFCL.

Every suite yields scored replies (`results.SampleResult`). `heldout` and `bfcl` are one prompt per
sample; `scenarios` run a loop per case (call -> run the Python tool -> `Response:` -> ... -> Final
Answer) with a turn limit, and give a `results.CaseResult` per case besides its steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentune.catalogue import call as call_tool
from agentune.core.errors import StageError
from agentune.evalsets.bfcl import load_category, pick
from agentune.evalsets.scenarios import Scenario, scenario_tools
from agentune.evaluate.results import CaseResult, SampleResult
from agentune.evaluate.scoring import Expected, score_sample
from agentune.inference.generation import Backend, Generation
from agentune.protocol import react


@dataclass
class Sample:
    suite: str
    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    expected: Expected
    reference: str | None = None  # a right reply (heldout: the reference turn), for the budget check
    source: str | None = None  # heldout: the training source the record was held out from


def score(sample_id: str, suite: str, step: int, gen: Generation, exp: Expected, **extra) -> SampleResult:
    """Parse and score one generation."""
    parsed = react.parse_reply(gen.text)
    verdicts = score_sample(parsed, exp, gen.stopped)
    return SampleResult(
        suite, sample_id, step, gen.text, gen.stopped, gen.n_tokens, parsed, exp, verdicts, **extra
    )


# ---- heldout ------------------------------------------------------------------------------------


def in_split(key: str, split: str) -> bool:
    """Whether the record or question `key` belongs to `split`: `all`, or `dev` (2/5) / `test` (3/5),
    disjoint by sha256(key) and fixed whatever the sample sizes (choose settings on dev, report on test)."""
    if split == "all":
        return True
    return (hashlib.sha256(key.encode("utf-8")).digest()[0] % 5 < 2) == (split == "dev")


def load_heldout(path: str | Path, n: int, split: str = "all") -> list[Sample]:
    """One sample per assistant turn of the held-out records of `split`: an evenly spread selection of
    `n` per source (the `source` each record names; one source when none does)."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: held-out file missing; run `agentune convert` first")
    by_source: dict[str | None, list[Sample]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            conv = rec["conversation"]
            rid = str(rec["id"])
            if not isinstance(conv, list) or not all(isinstance(m, dict) and "role" in m for m in conv):
                raise ValueError("conversation must be a list of {role, content} messages")
            for m in conv:
                if m["role"] not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                    raise ValueError(f"bad message {str(m)[:80]}")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StageError(
                f"{path}:{lineno}: not a held-out record {{id, conversation: [{{role, content}}]}}: {exc}"
            ) from None
        if in_split(rid, split):
            source = rec.get("source")
            by_source.setdefault(source, []).extend(_turn_samples(rid, conv, source))
    return [s for samples in by_source.values() for s in pick(samples, n)]


def _turn_samples(rid: str, conv: list[dict[str, Any]], source: str | None) -> list[Sample]:
    """A sample per scorable assistant turn: the history before it, and what the turn did."""
    system = next((m["content"] for m in conv if m["role"] == "system"), "")
    tools = react.tools_from_system(system)
    specs = {t["name"]: t for t in tools or []}
    samples, first = [], True
    for k, msg in enumerate(conv):
        if msg["role"] != "assistant":
            continue
        ref = react.parse_reply(msg["content"])
        if ref.kind == "call" and ref.args is not None:
            exp = Expected.call(ref.action, ref.args, specs.get(ref.action))
        elif ref.kind == "final":
            exp = Expected(name=None, irrelevant=first and bool(tools))
        else:
            first = False
            continue  # a reference turn outside the protocol cannot be scored
        history = [{"role": m["role"], "content": m["content"]} for m in conv[:k]]
        samples.append(Sample("heldout", f"{rid}#{k}", history, tools, exp, msg["content"], source))
        first = False
    return samples


# ---- BFCL ---------------------------------------------------------------------------------------


def load_bfcl(wheel: Path, categories: dict[str, int], split: str = "all") -> list[Sample]:
    """BFCL questions of `split` rendered into the protocol; simple_* expect the ground-truth call."""
    samples = []
    for category, n in categories.items():
        if n <= 0:
            continue
        for q in load_category(wheel, category, n, lambda qid: in_split(qid, split)):
            tools = q["tools"]
            msgs = [m for m in q["messages"] if m["role"] != "system"]
            sys_extra = "\n".join(m["content"] for m in q["messages"] if m["role"] == "system")
            try:
                system = react.render_system(tools) + (f"\n{sys_extra}" if sys_extra else "")
            except react.ToolSpecError as exc:
                raise StageError(f"BFCL {category} sample {q['id']}: {exc}") from None
            messages = [{"role": "system", "content": system}, *msgs]
            if q["ground_truth"]:
                name, args = next(iter(q["ground_truth"][0].items()))
                spec = next((t for t in tools if t["name"] == name), None)
                exp = Expected(name=name, args=args, spec=spec)
                # the shortest right reply: an empty Thought and each argument's first allowed value
                first = {k: [v for v in vals if v != ""] for k, vals in args.items()}
                first = {k: vals[0] for k, vals in first.items() if vals}
                ref = react.format_call("", name, first)
            else:
                exp, ref = Expected(name=None, irrelevant=True), None
            samples.append(Sample(f"bfcl_{category}", q["id"], messages, tools, exp, ref))
    return samples


def over_budget(samples: list[Sample], count_tokens, max_new_tokens: int) -> list[tuple[str, int]]:
    """`(sample id, tokens)` of the samples whose reference reply (+ its stop token) exceeds the budget.

    A model cannot stop on such a sample even with the right answer, so `stopped` would measure
    `max_new_tokens`, not the model.
    """
    sizes = ((s.id, count_tokens(s.reference) + 1) for s in samples if s.reference)
    return sorted(((sid, n) for sid, n in sizes if n > max_new_tokens), key=lambda x: -x[1])


def run_single(backend: Backend, samples: list[Sample]) -> list[SampleResult]:
    """Generate one reply per sample (batched by the backend) and score it."""
    gens = backend.generate([(s.messages, s.tools) for s in samples])
    return [
        score(s.id, s.suite, 0, g, s.expected, source=s.source) for s, g in zip(samples, gens, strict=True)
    ]


# ---- scenarios ----------------------------------------------------------------------------------


@dataclass
class _State:
    sc: Scenario
    messages: list[dict[str, Any]]
    turn: int = 0
    call_idx: int = 0
    steps: int = 0
    ok: bool = True
    done: bool = False
    records: list[SampleResult] = field(default_factory=list)


def _answer_found(answer: str, text: str) -> bool:
    """The expected answer in the final text: numbers by value (to 1e-6), other text case-insensitively."""
    try:
        want = float(answer)
    except ValueError:
        return answer.lower() in text.lower()
    nums = re.findall(r"-?\d[\d,]*\.?\d*(?:[eE]-?\d+)?", text)
    for n in nums:
        try:
            if math.isclose(float(n.replace(",", "")), want, rel_tol=1e-6, abs_tol=1e-6):
                return True
        except ValueError:
            continue
    return False


def run_scenarios(
    backend: Backend,
    scenarios: list[Scenario],
    max_turns: int,
    style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT,
) -> tuple[list[SampleResult], list[CaseResult]]:
    """Run every scenario's loop (batched across scenarios); return per-step records and per-case results.

    Tool results go back to the model in `style`, the way its training data sent them."""
    catalogue = scenario_tools()
    states = []
    for sc in scenarios:
        specs = [catalogue[n][0] for n in sc.tools]
        msgs = [{"role": "system", "content": react.render_system(specs)},
                {"role": "user", "content": sc.turns[0][0]}]  # fmt: skip
        states.append(_State(sc, msgs))
    while active := [s for s in states if not s.done]:
        gens = backend.generate([(s.messages, [catalogue[n][0] for n in s.sc.tools]) for s in active])
        for st, gen in zip(active, gens, strict=True):
            _advance(st, gen, catalogue, max_turns, style)
    records = [r for s in states for r in s.records]
    return records, [CaseResult(s.sc.id, float(s.ok), s.steps) for s in states]


def _advance(st: _State, gen: Generation, catalogue, max_turns: int, style: react.ToolResultStyle) -> None:
    user_text, calls, answer = st.sc.turns[st.turn]
    if st.call_idx < len(calls):
        name, args = calls[st.call_idx]
        exp = Expected.call(name, args, catalogue[name][0])
    else:
        exp = Expected(name=None)
    rec = score(st.sc.id, "scenarios", st.steps, gen, exp, turn=st.turn)
    st.records.append(rec)
    st.steps += 1
    parsed = rec.parsed
    if parsed.kind == "call" and parsed.args is not None and parsed.action in st.sc.tools:
        st.ok = st.ok and rec.verdicts["call_em"] == 1.0
        ran = call_tool(catalogue[parsed.action][1], parsed.args)
        result = ran.result
        if ran.error:
            rec.tool_error = ran.error
            st.ok = False
        st.call_idx += 1
        st.messages += [
            {
                "role": "assistant",
                "content": react.format_call(parsed.thought or "", parsed.action, parsed.args),
            },
            style.message(result),
        ]
    elif parsed.kind == "final":
        st.ok = st.ok and st.call_idx >= len(calls) and _answer_found(answer, parsed.final_answer or "")
        st.messages.append({"role": "assistant", "content": gen.text.strip()})
        st.turn += 1
        st.call_idx = 0
        if st.turn < len(st.sc.turns):
            st.messages.append({"role": "user", "content": st.sc.turns[st.turn][0]})
        else:
            st.done = True
    else:  # invalid reply, unknown tool or unparseable arguments: the case fails here
        st.ok = False
        st.done = True
    if st.steps >= max_turns and not st.done:
        st.ok = False
        st.done = True
