"""`tool_choice` enforced while decoding: the protocol's keywords and the tool name are forced.

A reply plan is a list of segments the reply must go through, in order:

- `none`:            `Thought:` <one line> `Final Answer:` <free>
- `required`:        `Thought:` <one line> `Action:` <one offered name> `Action Input:` <free>
- a named function:  `Thought:` <one line> `Action: NAME` `Action Input:` <free>
- `auto`:            no plan; the model decides.

Forced text is the tokenizer's own encoding of that text, emitted token by token; a choice among
names allows, at each step, only the next tokens of the names still possible. The thought line may
not end the reply (the turn's stop tokens are masked) and ends at the first token holding a newline,
or is closed by a forced newline after `max_thought_tokens`. The argument JSON is the model's own:
a reply whose arguments are not a JSON object is returned as content (`render.reply_message`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentune.protocol import react


@dataclass
class Segment:
    kind: str  # "force" (one of `options`), "line" (free text up to a newline), "free" (until stop)
    options: list[list[int]] = field(default_factory=list)


def plan_for(choice: str, names: Sequence[str], encode: Callable[[str], list[int]]) -> list[Segment] | None:
    """The reply plan for a tool choice (`none`, `auto`, `required`, `function:<name>`); None for auto."""
    if choice == "auto":
        return None
    head = [Segment("force", [encode(react.THOUGHT)]), Segment("line")]
    if choice == "none":
        return [*head, Segment("force", [encode(react.FINAL)]), Segment("free")]
    if choice.startswith("function:"):
        call = f"{react.ACTION} {choice.split(':', 1)[1]}\n{react.ACTION_INPUT}"
        return [*head, Segment("force", [encode(call)]), Segment("free")]
    options = [encode(f" {name}\n{react.ACTION_INPUT}") for name in names]
    return [*head, Segment("force", [encode(react.ACTION)]), Segment("force", options), Segment("free")]


class PlanState:
    """Where one reply is in its plan; `allowed()` before each token, `advance()` after it."""

    def __init__(
        self,
        plan: list[Segment],
        newline_ids: list[int],
        has_newline: Callable[[int], bool],
        max_thought_tokens: int = 96,
    ):
        self.plan, self.newline_ids, self.has_newline = plan, newline_ids, has_newline
        self.max_thought_tokens = max_thought_tokens
        self.index, self.emitted = 0, []

    @property
    def segment(self) -> Segment:
        return self.plan[min(self.index, len(self.plan) - 1)]

    def may_stop(self) -> bool:
        """Whether a stop token may end the reply here (only in the last, free segment)."""
        return self.segment.kind == "free"

    def allowed(self) -> list[int] | None:
        """The token ids allowed next, or None when the model chooses freely."""
        seg, k = self.segment, len(self.emitted)
        if seg.kind == "force":
            return sorted({o[k] for o in seg.options if len(o) > k and o[:k] == self.emitted})
        if seg.kind == "line" and k >= self.max_thought_tokens:
            return self.newline_ids
        return None

    def advance(self, token: int) -> None:
        seg = self.segment
        if seg.kind == "free":
            return
        self.emitted.append(token)
        if seg.kind == "force" and any(o == self.emitted for o in seg.options):
            self.index, self.emitted = self.index + 1, []
        elif seg.kind == "line" and self.has_newline(token):
            self.index, self.emitted = self.index + 1, []
