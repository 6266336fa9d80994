"""A deterministic generator of Agent-FLAN-format conversations that teach ReAct tool calling.

Record i of a file is built from its own `Draw(f"{seed}:{stem}:{i}", mix)`, where `stem` is the file's
name without `.jsonl` (a `random.Random` that carries
the mix of params `raw_data.sample.mix`), so the same seed and mix give byte-identical files and a larger
`n_records` only appends records. Record kinds (`records.BUILDERS`), each written to the Agent-FLAN file
that holds that kind of data:

- `react`: one tool call, its `Response:` (a user turn) and a Final Answer that uses the result.
- `react_multi`: several calls in a row (calculator chains, flight number -> ticket price, two
  independent lookups) and follow-up questions in the same conversation.
- `j1s1`: single-turn format following: the assistant's only turn is one call, then it stops.
- `negative`: tools are offered but none fits (or none is needed): Final Answer without a call.
- `tflan` / `tflan_cot`: the same kinds of tasks as plain chat with a plain system prompt.

A share (`mix.formula_share`) of the `react`, `j1s1` and `negative` records offer formula tools instead
(`agentune.raw_data.formulas`): calculators under drawn tool and parameter names.

The tools, their schemas and their request generators are the catalogue's (`agentune.catalogue`).
No record holds a request or a call of the evaluation's reference scenarios (`evalsets.scenarios`):
such a record is drawn again, and no request names a paper the scenarios look up
(`catalogue.EVALUATION_PAPERS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from agentune.catalogue import Draw
from agentune.evalsets import scenarios
from agentune.evalsets.leak import call_key
from agentune.protocol import react
from agentune.raw_data.config import SampleMix
from agentune.raw_data.records import BUILDERS

#: Agent-FLAN's seven files and the record kind each holds here.
FILES: dict[str, str] = {
    "agent_instruct_react.jsonl": "react_multi",
    "agent_instruct_tflan.jsonl": "tflan",
    "toolbench_instruct_j1s1_3k.jsonl": "j1s1",
    "toolbench_negative.jsonl": "negative",
    "toolbench_react_10p.jsonl": "react",
    "toolbench_tflan_60p_r10r5u7.jsonl": "tflan_multi",
    "toolbench_tflan_cot_30p.jsonl": "tflan_cot",
}


def file_counts(n_records: int, mix: dict[str, float]) -> dict[str, int]:
    """Records per file (largest remainder, so the counts add up to `n_records` exactly)."""
    total = sum(mix.values())
    exact = {f: n_records * w / total for f, w in mix.items()}
    counts = {f: int(v) for f, v in exact.items()}
    rest = n_records - sum(counts.values())
    for f in sorted(exact, key=lambda f: (counts[f] - exact[f], f))[:rest]:
        counts[f] += 1
    return counts


#: The reference scenarios' requests and calls (`evalsets.scenarios`): a record holding one is drawn again,
#: so the scenarios measure generalisation, not recall (`convert`'s leak check verifies it).
_RESERVED_REQUESTS = tuple(scenarios.requests())
_RESERVED_CALLS = frozenset(call_key(name, args) for name, args in scenarios.calls())


def is_reserved(conversation: list[dict[str, Any]]) -> bool:
    """Whether a user turn contains a scenario's request, or an assistant turn makes a scenario's call."""
    for m in conversation:
        if m["role"] == "user" and any(q in m["content"] for q in _RESERVED_REQUESTS):
            return True
        if m["role"] == "assistant":
            reply = react.parse_reply(m["content"])
            if (
                reply.kind == "call"
                and reply.args is not None
                and call_key(reply.action, reply.args) in _RESERVED_CALLS
            ):
                return True
    return False


#: `mix.renamed_share` of these kinds' records offer their tools under other names (the same functions),
#: so the model learns to copy the name from the tool list instead of recalling a fixed one.
_RENAMED_KINDS = ("react", "react_multi", "j1s1", "negative")


def name_variant(name: str, r: Draw) -> str:
    """Another plausible name for a tool: a different verb, camelCase, or another namespace."""
    ns, _, base = name.rpartition(".")
    options = []
    if base.startswith("get_"):
        options += [f"fetch_{base[4:]}", f"lookup_{base[4:]}", f"query_{base[4:]}"]
    parts = base.split("_")
    if len(parts) > 1:
        options.append(parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]))
    options += [f"{r.choice(('api', 'tools', 'utils', 'service'))}.{base}"]
    if ns:
        options.append(base)
    return r.choice(options)


def rename_tools(conv: list[dict[str, Any]], r: Draw) -> list[dict[str, Any]]:
    """The same conversation with every offered tool renamed (system prompt, calls, answers)."""
    system = conv[0]["content"]
    specs = react.tools_from_system(system)
    if not specs or system != react.render_system(specs):
        return conv
    names = {s["name"]: name_variant(s["name"], r) for s in specs}
    if len(set(names.values())) < len(names):
        return conv
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    out = [{**conv[0], "content": react.render_system([{**s, "name": names[s["name"]]} for s in specs])}]
    for m in conv[1:]:
        if m["role"] == "assistant":
            m = {**m, "content": pattern.sub(lambda x: names[x.group(0)], m["content"])}
        out.append(m)
    return out


def generate(file_name: str, count: int, seed: int, mix: SampleMix | None = None) -> Iterator[dict[str, Any]]:
    """The records of one file; record i depends only on (seed, mix, file_name, i)."""
    mix = mix or SampleMix()
    kind = FILES[file_name]
    stem = file_name.removesuffix(".jsonl")
    for i in range(count):
        conv = BUILDERS[kind](Draw(f"{seed}:{stem}:{i}", mix))
        retry = 0
        while is_reserved(conv):  # rebuild deterministically from a derived seed
            retry += 1
            conv = BUILDERS[kind](Draw(f"{seed}:{stem}:{i}:{retry}", mix))
        if kind in _RENAMED_KINDS:
            r = Draw(f"{seed}:{stem}:{i}:names", mix)
            if r.random() < mix.renamed_share:
                conv = rename_tools(conv, r)
        yield {"id": f"{stem}_{i}", "conversation": conv}
