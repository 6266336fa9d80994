"""What evaluation produces, typed: one scored reply (`SampleResult`), one scenario case (`CaseResult`),
and everything one model did (`ModelRun`). Reports, the samples file and MLflow read these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentune.evaluate.scoring import Expected
from agentune.protocol.react import ParsedReply


@dataclass
class SampleResult:
    """One scored generation: a single-turn sample (`step` 0), or one step of a scenario case."""

    suite: str
    id: str
    step: int
    output: str
    stopped: bool
    n_tokens: int
    parsed: ParsedReply
    expected: Expected
    verdicts: dict[str, float | None]
    source: str | None = None  # heldout: the training source the record was held out from
    turn: int | None = None  # scenarios: the user turn this step answers
    tool_error: str | None = None  # scenarios: the tool raised on this step's call

    @property
    def key(self) -> tuple[str, str, int]:
        """The same prompt for every model: (suite, id, step)."""
        return self.suite, self.id, self.step

    def to_json(self) -> dict[str, Any]:
        """One line of reports/eval_samples.jsonl."""
        doc: dict[str, Any] = {
            "suite": self.suite,
            "id": self.id,
            "step": self.step,
            "output": self.output,
            "stopped": self.stopped,
            "n_tokens": self.n_tokens,
            "parsed": {
                "kind": self.parsed.kind,
                "action": self.parsed.action,
                "args": self.parsed.args,
                "hallucinated": self.parsed.hallucinated,
                "problems": self.parsed.problems,
            },
            "expected": {
                "name": self.expected.name,
                "args": self.expected.args,
                "irrelevant": self.expected.irrelevant,
            },
            "verdicts": self.verdicts,
        }
        for name in ("source", "turn", "tool_error"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        return doc


@dataclass
class CaseResult:
    """One scenario case, run to its end: solved end to end or not, after how many model steps."""

    id: str
    e2e_success: float
    steps: int
    suite: str = "scenarios"

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "id": self.id,
            "case": True,
            "e2e_success": self.e2e_success,
            "steps": self.steps,
        }


@dataclass
class ModelRun:
    """Every scored reply and scenario case of one model."""

    samples: list[SampleResult] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(s.n_tokens for s in self.samples)
