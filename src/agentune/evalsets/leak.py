"""The leak check: is any evaluation item (held-out, scenarios, BFCL) in the training records?

Two tests per item, against every training record:
- **exact call**: the same tool and the same arguments after normalisation (`call_key`: strings
  trimmed and lower-cased, numbers compared as numbers, keys sorted);
- **near-duplicate request**: a user request whose word 3-gram shingles have a Jaccard similarity of at
  least `threshold` with a training request. Candidates come from MinHash LSH (`datasketch`), then the
  exact Jaccard of the two shingle sets decides, so an LSH false positive never counts.

Why MinHash over shingles, not long n-gram overlap: the requests are short (a median of ~12 words in
the sample, one sentence in BFCL), far below the 8-13-gram windows that long-overlap checks (GPT-3's
13-gram rule) need to mean anything; a templated request that differs in one value shares most
3-grams with its sibling, and Jaccard over 3-grams says how much. LSH keeps the check linear in the
training size (34k records for the full Agent-FLAN).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentune.protocol import react

_WORD = re.compile(r"[\w.%$€£+\-*/]+", re.UNICODE)


def _norm_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return " ".join(value.split()).lower()
    if isinstance(value, list):
        return [_norm_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm_value(v) for k, v in value.items()}
    return str(value)


def call_key(name: str | None, args: dict[str, Any]) -> str:
    """A call as one normalised string: equal for the same tool and the same argument values."""
    return f"{name}|{json.dumps(_norm_value(args), sort_keys=True, ensure_ascii=False)}"


def words(text: str) -> list[str]:
    """A request's words, lower-cased; numbers keep their point, sign or unit ("3.5", "-2", "5%")."""
    return [w for w in (t.strip(".") for t in _WORD.findall(text.lower())) if w]


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of a request (a text shorter than n words is one shingle)."""
    words_ = words(text)
    if len(words_) <= n:
        return {" ".join(words_)} if words_ else set()
    return {" ".join(words_[i : i + n]) for i in range(len(words_) - n + 1)}


def requests_and_calls(
    messages: list[dict[str, Any]], style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT
) -> tuple[list[str], list[str]]:
    """A conversation's user requests (not tool results) and its calls as `call_key`s."""
    requests, calls = [], []
    after_call = False
    for m in messages:
        if m["role"] == "assistant":
            reply = react.parse_reply(m["content"])
            after_call = reply.kind == "call"
            if after_call and reply.args is not None:
                calls.append(call_key(reply.action, reply.args))
        elif m["role"] == "user":
            if not (after_call and style.result_of(m) is not None):
                requests.append(m["content"])
            after_call = False
    return requests, calls


@dataclass
class Hit:
    """An evaluation item found in training: what matched, and where in training."""

    item: str  # suite and item id
    kind: str  # "exact_call" | "near_duplicate"
    text: str  # the call or the request
    where: str  # the training record's file:line
    similarity: float = 1.0

    def line(self) -> str:
        sim = f" (Jaccard {self.similarity:.2f})" if self.kind == "near_duplicate" else ""
        return f"{self.item}: {self.kind}{sim} {self.text[:120]!r} in training at {self.where}"


@dataclass
class TrainingIndex:
    """Every training record's calls and requests, for the leak check."""

    threshold: float = 0.8
    num_perm: int = 128
    calls: dict[str, str] = field(default_factory=dict)  # call_key -> first file:line
    by_name: dict[str, list[tuple[dict[str, Any], str]]] = field(
        default_factory=dict
    )  # name -> (args, where)
    _shingles: dict[str, set[str]] = field(default_factory=dict)
    _where: dict[str, str] = field(default_factory=dict)
    _requests: dict[str, str] = field(default_factory=dict)  # normalised request -> key
    _lsh: Any = None
    _pending: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from datasketch import MinHashLSH

        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)

    def _minhash(self, sh: set[str]):
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=1)
        m.update_batch([s.encode("utf-8") for s in sh])
        return m

    def add(self, where: str, messages: list[dict[str, Any]], style: react.ToolResultStyle) -> None:
        """Index one training record (`where` = its file:line)."""
        requests, calls = requests_and_calls(messages, style)
        for c in calls:
            if c not in self.calls:
                self.calls[c] = where
                name, _, args = c.partition("|")
                self.by_name.setdefault(name, []).append((json.loads(args), where))
        for text in requests:
            norm = " ".join(words(text))
            if not norm or norm in self._requests:
                continue
            key = f"r{len(self._requests)}"
            self._requests[norm] = key
            sh = shingles(text)
            self._shingles[key], self._where[key] = sh, where
            self._pending.append((key, self._minhash(sh)))
            if len(self._pending) >= 5000:
                self._flush()

    def _flush(self) -> None:
        with self._lsh.insertion_session() as session:
            for key, m in self._pending:
                session.insert(key, m)
        self._pending = []

    def near(self, text: str) -> tuple[float, str] | None:
        """The most similar training request at or above the threshold: (Jaccard, file:line)."""
        if self._pending:
            self._flush()
        sh = shingles(text)
        if not sh:
            return None
        best = None
        for key in self._lsh.query(self._minhash(sh)):
            other = self._shingles[key]
            jac = len(sh & other) / len(sh | other)
            if jac >= self.threshold and (best is None or jac > best[0]):
                best = (jac, self._where[key])
        return best

    def find_ground_truth(self, name: str, accepted: dict[str, list[Any]]) -> str | None:
        """Where training makes a call that BFCL's ground truth accepts (every argument one of its
        accepted values, `""` meaning it may be left out), or None."""
        want = {k: [_norm_value(v) for v in vals] for k, vals in accepted.items()}
        for args, where in self.by_name.get(name, ()):
            if set(args) <= set(want) and all(
                (k in args and args[k] in vals) or (k not in args and "" in vals) for k, vals in want.items()
            ):
                return where
        return None

    def check(self, item: str, requests: Iterable[str], calls: Iterable[str]) -> list[Hit]:
        """The hits of one evaluation item (its requests and its expected calls)."""
        hits = [
            Hit(item=item, kind="exact_call", text=c, where=self.calls[c]) for c in calls if c in self.calls
        ]
        for text in requests:
            found = self.near(text)
            if found:
                hits.append(
                    Hit(
                        item=item,
                        kind="near_duplicate",
                        text=text,
                        where=found[1],
                        similarity=round(found[0], 4),
                    )
                )
        return hits
