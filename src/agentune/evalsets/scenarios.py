"""The reference scenarios, defined once: `evaluate` runs them (real tools, multi-turn) and the sample
generator never writes their requests or calls, and `convert`'s leak check stops the pipeline if any
training record holds one.

The write-up's three cases (a flight number then its price, a calculator chain, an arXiv search) with
its fixed questions, plus one new phrasing and values of each. Expected calls come from the real tools
of the sample catalogue (`agentune.catalogue`), so the answers are true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentune.catalogue import REGISTRY


def scenario_tools() -> dict[str, tuple[dict[str, Any], Any]]:
    """The scenario tools (spec, callable) from the sample tool catalogue."""
    names = (
        "get_flight_number",
        "get_ticket_price",
        "calculator",
        "ArxivSearch.get_arxiv_article_information",
    )
    return {n: REGISTRY[n] for n in names}


@dataclass
class Scenario:
    """A conversation of user turns; each expects calls in order, then a final answer containing text."""

    id: str
    tools: list[str]
    turns: list[tuple[str, list[tuple[str, dict[str, Any]]], str]]  # (user text, expected calls, answer)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def reference_scenarios() -> list[Scenario]:
    """The write-up's three cases (fixed questions) plus one new phrasing/values of each."""
    tools = scenario_tools()
    flight, price = tools["get_flight_number"][1], tools["get_ticket_price"][1]
    out = []
    for sid, (dep, dst, day), (q1, q2) in (
        ("flight_beijing_shanghai", ("Beijing", "Shanghai", "2024-07-01"),
         ("Please find the flight number from {dep} to {dst} on {day}.", "How much is a ticket for that flight?")),
        ("flight_guangzhou_chengdu", ("Guangzhou", "Chengdu", "2024-09-15"),
         ("I need to fly from {dep} to {dst} on {day}. Which flight number is that?", "What does a ticket on it cost?")),
    ):  # fmt: skip
        fn = flight(dep, dst, day)
        cost = price(fn, day)
        out.append(
            Scenario(
                sid,
                ["get_flight_number", "get_ticket_price"],
                [
                    (
                        q1.format(dep=dep, dst=dst, day=day),
                        [("get_flight_number", {"departure": dep, "destination": dst, "date": day})],
                        fn,
                    ),
                    (q2, [("get_ticket_price", {"flight_number": fn, "date": day})], str(cost)),
                ],
            )  # fmt: skip
        )
    # (44232 + 13312 / (232 - 32)) * 5 = 221492.8 (the write-up quotes 221490, a rounded figure)
    for sid, question, steps in (
        ("calculator_reference", "Calculate (44232 + 13312 / (232 - 32)) * 5.",
         [(232, 32, "-"), (13312, 200, "/"), (44232, 66.56, "+"), (44298.56, 5, "*")]),
        ("calculator_new", "What is (1750 - 250) / 6 + 18?", [(1750, 250, "-"), (1500, 6, "/"), (250, 18, "+")]),
    ):  # fmt: skip
        calls = [("calculator", {"a": a, "b": b, "operator": op}) for a, b, op in steps]
        answer = tools["calculator"][1](*steps[-1])
        out.append(Scenario(sid, ["calculator"], [(question, calls, _number(answer))]))
    arxiv = "ArxivSearch.get_arxiv_article_information"
    out.append(
        Scenario(
            "arxiv_internlm2",
            [arxiv],
            [
                (
                    "Please help me search the InternLM2 Technical Report.",
                    [(arxiv, {"query": "InternLM2 Technical Report"})],
                    "InternLM2",
                )
            ],
        )  # fmt: skip
    )
    out.append(
        Scenario(
            "arxiv_lora",
            [arxiv],
            [
                (
                    "Look up the arXiv paper 'LoRA: Low-Rank Adaptation of Large Language Models' for me.",
                    [(arxiv, {"query": "LoRA: Low-Rank Adaptation of Large Language Models"})],
                    "2106.09685",
                )
            ],
        )  # fmt: skip
    )
    return out


def requests() -> list[str]:
    """Every user turn of every scenario."""
    return [text for sc in reference_scenarios() for text, _, _ in sc.turns]


def calls() -> list[tuple[str, dict[str, Any]]]:
    """Every call the scenarios expect, in order."""
    return [call for sc in reference_scenarios() for _, expected, _ in sc.turns for call in expected]
