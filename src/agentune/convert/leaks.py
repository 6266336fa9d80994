"""The leak check run by `convert`: every evaluation item against the training records it writes.

Held-out records (drawn from the same sources as training) get rates, not a verdict: a
template-generated held-out set that mostly repeats training is worth knowing, and the rates say how
much. A fixed suite's item (the reference scenarios, BFCL) whose call or request is in training
stops the stage, listing each hit with the training record's file:line.
"""

from __future__ import annotations

import logging
from typing import Any

from agentune.convert.config import LeakCheckConfig
from agentune.core.errors import StageError
from agentune.evalsets import bfcl, scenarios
from agentune.evalsets.leak import Hit, TrainingIndex, call_key, requests_and_calls
from agentune.protocol import react

log = logging.getLogger(__name__)


class LeakCheck:
    def __init__(self, cfg: LeakCheckConfig, style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT):
        self.cfg, self.style = cfg, style
        self.index = TrainingIndex(cfg.threshold, cfg.num_perm)
        self.heldout: list[tuple[str, str, list[str], list[str]]] = []  # (source, id, requests, calls)

    def add_training(self, where: str, messages: list[dict[str, Any]]) -> None:
        self.index.add(where, messages, self.style)

    def add_heldout(self, source: str, rid: str, messages: list[dict[str, Any]]) -> None:
        requests, calls = requests_and_calls(messages, self.style)
        self.heldout.append((source, rid, requests, calls))

    def finish(self) -> dict[str, Any]:
        """The report for metrics/data.json; a StageError listing every hit of a fixed suite."""
        report: dict[str, Any] = {
            "method": f"exact call (normalised) + MinHash LSH over word 3-grams, Jaccard >= {self.cfg.threshold}",
            "heldout": self._heldout(),
        }
        fatal: list[Hit] = []
        if "scenarios" in self.cfg.fixed_suites:
            hits = self._scenarios()
            report["scenarios"] = self._summary(hits, len(scenarios.reference_scenarios()))
            fatal += hits
        if "bfcl" in self.cfg.fixed_suites:
            hits, n = self._bfcl()
            report["bfcl"] = self._summary(hits, n)
            fatal += hits
        if fatal:
            listed = "\n".join(f"  - {h.line()}" for h in fatal[:50])
            raise StageError(
                f"convert: {len(fatal)} evaluation item(s) of a fixed suite are in the training data, so their "
                f"scores would measure recall, not skill:\n{listed}\nRemove those records (or change their "
                "requests and calls), or drop the suite from convert.leak_check.fixed_suites and from "
                "evaluate.suites"
            )
        return report

    def _summary(self, hits: list[Hit], n_items: int) -> dict[str, Any]:
        return {"items": n_items, "hits": len(hits), "listed": [h.line() for h in hits[: self.cfg.listed]]}

    def _heldout(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for source in dict.fromkeys(s for s, _, _, _ in self.heldout):
            calls = requests = exact = near = 0
            listed: list[str] = []
            for src, rid, reqs, cls in self.heldout:
                if src != source:
                    continue
                hits = self.index.check(f"heldout {source}/{rid}", reqs, cls)
                calls, requests = calls + len(cls), requests + len(reqs)
                exact += sum(h.kind == "exact_call" for h in hits)
                near += sum(h.kind == "near_duplicate" for h in hits)
                listed += [h.line() for h in hits][: max(0, self.cfg.listed - len(listed))]
            out[source] = {
                "calls": calls,
                "exact_call_rate": round(exact / calls, 4) if calls else None,
                "requests": requests,
                "near_duplicate_rate": round(near / requests, 4) if requests else None,
                "listed": listed,
            }
            log.info(
                "leak check, held-out %s: %d/%d calls and %d/%d requests also in training",
                source, exact, calls, near, requests,
            )  # fmt: skip
        return out

    def _scenarios(self) -> list[Hit]:
        hits = []
        for sc in scenarios.reference_scenarios():
            requests = [text for text, _, _ in sc.turns]
            calls = [call_key(name, args) for _, expected, _ in sc.turns for name, args in expected]
            hits += self.index.check(f"scenarios/{sc.id}", requests, calls)
        return hits

    def _bfcl(self) -> tuple[list[Hit], int]:
        wheel = bfcl.fetch_wheel(self.cfg.bfcl_cache_dir)
        hits, n = [], 0
        for category in bfcl.CATEGORIES:
            for q in bfcl.load_category(wheel, category, 10**9):
                n += 1
                item = f"bfcl_{category}/{q['id']}"
                requests = [m["content"] for m in q["messages"] if m.get("role") == "user"]
                hits += self.index.check(item, requests, [])
                for gt in q["ground_truth"] or []:
                    name, accepted = next(iter(gt.items()))
                    where = self.index.find_ground_truth(name, accepted)
                    if where:
                        hits.append(
                            Hit(item=item, kind="exact_call", text=f"{name}({accepted})", where=where)
                        )
        return hits, n
