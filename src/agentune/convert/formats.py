"""What the records say about the tool protocol: which conversations call tools at all, and how their
tool results come back (the role of the turn after a call, and the text before the result).

The convention the data uses most is recorded with the converted dataset (`tool_result` in
agentune_convert.json) and travels with the model (train, export), so evaluation and serving send tool
results the way the model was trained to read them. A record that sends results in more than one way
is reported with its file:line; a record whose system prompt is no tool protocol is trained as chat.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from agentune.protocol.react import ACTION_INPUT, ToolResultStyle, is_tool_prompt, parse_reply

log = logging.getLogger(__name__)

#: mixed records listed by file:line in metrics/data.json (all are counted)
MIXED_LISTED = 20


class FormatStats:
    """Counts, over the kept records, of tool-protocol vs chat conversations and tool-result styles."""

    def __init__(self) -> None:
        self.records: Counter[str] = Counter()
        self.styles: Counter[ToolResultStyle] = Counter()  # tool results seen, per style
        self.mixed: list[str] = []
        self.n_mixed = 0

    def add(self, where: str, rid: str, messages: list[dict[str, Any]]) -> None:
        """Count one record (`where` = `file:line`, for the report of a mixed record)."""
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        calls = [
            (m, nxt)
            for m, nxt in zip(messages, messages[1:], strict=False)
            if m["role"] == "assistant" and nxt["role"] != "assistant" and ACTION_INPUT in m["content"]
        ]
        styles = [ToolResultStyle.detect(nxt) for m, nxt in calls if parse_reply(m["content"]).kind == "call"]
        self.records["tool_protocol" if styles or is_tool_prompt(system) else "chat"] += 1
        self.styles.update(styles)
        if len(set(styles)) > 1:
            self.n_mixed += 1
            shown = ", ".join(_label(s) for s in dict.fromkeys(styles))
            if len(self.mixed) < MIXED_LISTED:
                self.mixed.append(f"{where}: record {rid!r}: {shown}")
            if self.n_mixed <= 10:
                log.warning("%s: record %r sends tool results in more than one way: %s", where, rid, shown)

    def style(self) -> ToolResultStyle:
        """The convention most tool results use (the default when the data has no tool results)."""
        return self.styles.most_common(1)[0][0] if self.styles else ToolResultStyle()

    def summary(self, raw_dir: Path) -> dict[str, Any]:
        if self.n_mixed > 10:
            log.warning(
                "%d records in %s mix tool-result conventions (first ones listed above)",
                self.n_mixed,
                raw_dir,
            )
        return {
            "conversations": {"tool_protocol": self.records["tool_protocol"], "chat": self.records["chat"]},
            "tool_result": self.style().dump(),
            "tool_result_styles": {_label(s): n for s, n in self.styles.most_common()},
            "mixed_tool_result_records": self.n_mixed,
            "mixed_tool_result_examples": self.mixed,
        }


def _label(style: ToolResultStyle) -> str:
    return f"{style.role} {style.prefix!r}"
