"""Stage convert: validate Agent-FLAN JSONL and write the dataset xtuner trains on (data/converted/).

Reads every `*.jsonl` in `raw_dir` in sorted order, line by line (never the whole corpus in memory),
validates each record (JSON, schema, roles, non-empty content, boolean `loss`, turn order, unique id),
and writes:
- `out`: a `datasets` save_to_disk folder, columns `id` and `messages` (list of {role, content, loss}),
  with an explicit boolean `loss` on every message (assistant true unless the raw record says false;
  system/user false): what xtuner's `load_from_disk` + `openai_map_fn` read. Beside it
  `agentune_convert.json` (`artifacts.ConvertRecord`: resolved config, counts, dataset fingerprint) and, with `on_error: skip`,
  `rejects.jsonl` (file, line, id, reason, excerpt of every rejected record).
- `heldout_out`: records whose sha256(id) falls in the held-out slice, in the raw schema; never trained on.
- `metrics_out`: counts per file, role, kept/rejected, and token-length percentiles measured with the
  base model's tokenizer and chat template.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from agentune.convert.config import Config
from agentune.convert.formats import FormatStats
from agentune.core.artifacts import ConvertRecord, base_model_path
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, atomic_file, write_json

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]

REJECTS = "rejects.jsonl"
ROLES = ("system", "user", "assistant")
_ROLE_SET = frozenset(ROLES)
EXCERPT_CHARS = 200


class BadRecord(ValueError):
    """One record that does not validate: a short `kind` (counted in the metrics) and the reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


@dataclass
class Reject:
    file: str
    line: int
    id: str | None
    kind: str
    reason: str
    excerpt: str
    bytes: int

    def message(self, raw_dir: Path) -> str:
        if self.line == 0:
            return f"{raw_dir / self.file}: {self.reason}"
        rid = f"record {self.id!r}" if self.id is not None else "record (no id found)"
        return f"{raw_dir / self.file}:{self.line}: {rid}: {self.reason}"


@dataclass
class Stats:
    lines: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    heldout: Counter = field(default_factory=Counter)
    roles: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    blank_lines: int = 0


def read_lines(fh: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None, int, bytes]]:
    """Yield (line_no, line, size, head) per line; `line` is None when it is longer than `max_bytes`.

    A too-long line is consumed in bounded chunks, so a huge line never sits in memory whole.
    """
    no = 0
    while True:
        line = fh.readline(max_bytes + 1)
        if not line:
            return
        no += 1
        if len(line) <= max_bytes or line.endswith(b"\n") and len(line) == max_bytes + 1:
            yield no, line, len(line), line[:EXCERPT_CHARS]
            continue
        size, head = len(line), line[:EXCERPT_CHARS]
        while not line.endswith(b"\n"):
            line = fh.readline(1 << 20)
            if not line:
                break
            size += len(line)
        yield no, None, size, head


_ID_IN_TEXT = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


def guess_id(head: bytes) -> str | None:
    """The record id read from the start of a line that cannot be parsed (for the error message)."""
    m = _ID_IN_TEXT.search(head)
    return m.group(1).decode("utf-8", "replace") if m else None


def _bad(kind: str, msg: str) -> BadRecord:
    return BadRecord(kind, msg)


def normalize(obj: Any) -> tuple[str, list[dict[str, Any]]]:
    """Validate one parsed record; return (id, messages with explicit boolean loss) or raise BadRecord."""
    if not isinstance(obj, dict):
        raise _bad("not_object", f"expected a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise _bad("missing_id", "missing or empty string field 'id'")
    if "conversation" not in obj:
        raise _bad(
            "missing_conversation", "missing field 'conversation' (a list of {role, content, loss} messages)"
        )
    conv = obj["conversation"]
    if not isinstance(conv, list) or not conv:
        raise _bad("bad_conversation", "'conversation' must be a non-empty list of messages")
    messages = []
    trained = False
    for i, m in enumerate(conv):
        if type(m) is not dict:
            raise _bad("bad_message", f"conversation[{i}] is not an object")
        role, content, loss = m.get("role"), m.get("content"), m.get("loss")
        if role not in _ROLE_SET:
            raise _bad(
                "unknown_role", f"conversation[{i}]: unknown role {role!r}; allowed: {', '.join(ROLES)}"
            )
        if type(content) is not str:
            what = type(content).__name__
            raise _bad("bad_content", f"conversation[{i}] ({role}): 'content' must be a string, got {what}")
        if not content or content.isspace():
            raise _bad("empty_content", f"conversation[{i}] ({role}): empty content")
        if loss is not None and loss is not True and loss is not False:
            raise _bad("bad_loss", f"conversation[{i}] ({role}): 'loss' must be true or false, got {loss!r}")
        train = role == "assistant" and loss is not False
        trained = trained or train
        messages.append({"role": role, "content": content, "loss": train})
    check_turns(messages, trained)
    return rid, messages


def check_turns(messages: list[dict[str, Any]], trained: bool) -> None:
    """Turn order xtuner's openai_map_fn turns into (input, output) pairs without losing anything."""
    roles = [m["role"] for m in messages]
    if not trained:
        if "assistant" not in roles:
            raise _bad("no_assistant_turn", "no assistant turn: nothing to train on")
        raise _bad("no_trained_turn", "every assistant turn has loss=false: nothing to train on")
    prev = None
    for i, role in enumerate(roles):
        if prev is None and role != "system":
            if role != "user":
                raise _bad("turn_order", f"the first non-system turn must be 'user', got {role!r}")
            prev = role
        elif role == "assistant" and prev == "assistant":
            raise _bad(
                "turn_order", f"conversation[{i}]: two assistant turns in a row (no user turn between them)"
            )
        elif prev is not None:
            prev = role
    if roles[-1] != "assistant":
        raise _bad(
            "turn_order",
            f"the conversation ends with a {roles[-1]!r} turn, which would never be answered or trained",
        )


def heldout_bucket(rid: str) -> int:
    """A stable bucket in [0, 1000) from the record id: sha256(id), first 8 bytes, mod 1000."""
    return _bucket(hashlib.sha256(rid.encode("utf-8")).digest())


def _bucket(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") % 1000


def is_heldout(rid: str, fraction: float) -> bool:
    return heldout_bucket(rid) < round(fraction * 1000)


def _features():
    from datasets import Features, Value

    try:
        from datasets import List
    except ImportError:  # datasets < 4
        from datasets import Sequence as List  # type: ignore[no-redef]
    message = {"role": Value("string"), "content": Value("string"), "loss": Value("bool")}
    return Features({"id": Value("string"), "messages": List(message)})


def percentiles(values: list[int]) -> dict[str, float | int]:
    """Nearest-rank p50/p90/p99/max and mean."""
    if not values:
        return {"n": 0}
    v = sorted(values)

    def p(q: float) -> int:
        return v[max(0, math.ceil(q / 100 * len(v)) - 1)]

    return {
        "n": len(v),
        "p50": p(50),
        "p90": p(90),
        "p99": p(99),
        "max": v[-1],
        "mean": round(sum(v) / len(v), 1),
    }


def token_lengths(base_dir: Path, samples: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Token counts of whole conversations rendered with the base model's own chat template.

    Uses the `tokenizers` library and the template from tokenizer_config.json directly (no transformers
    or torch import: that alone costs ~1 GiB of RSS and many seconds on a small machine).
    """
    from agentune.core.io import read_json

    path = base_model_path(base_dir)
    if not (path / "tokenizer.json").is_file():
        raise StageError(
            f"{path}: no tokenizer.json (a fast tokenizer is needed for the token statistics); "
            "set convert.token_stats_records: 0 to skip them"
        )
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    render, method = chat_renderer(read_json(path / "tokenizer_config.json"))
    texts = [render(msgs) for msgs in samples]
    lengths = [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    return {
        "tokenizer": str(path),
        "method": method,
        **percentiles(lengths),
    }


def chat_renderer(tok_cfg: dict[str, Any]) -> tuple[Callable[[list[dict[str, Any]]], str], str]:
    """(render, method): render messages with the tokenizer config's Jinja chat template, as HF does."""
    template = tok_cfg.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if not template:

        def plain(msgs):
            return "\n".join(m["content"] for m in msgs)

        return plain, "contents joined by newlines (no chat template)"
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise StageError(f"chat template error: {message}")

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)
    tokens = {
        k: (v.get("content") if isinstance(v, dict) else v)
        for k, v in tok_cfg.items()
        if k.endswith("_token")
    }

    def render(msgs):
        plain = [{"role": m["role"], "content": m["content"]} for m in msgs]
        return compiled.render(messages=plain, add_generation_prompt=False, **tokens)

    return render, "chat template"


def _check_inputs(cfg: Config) -> list[Path]:
    if not cfg.raw_dir.is_dir():
        raise StageError(f"convert.raw_dir={cfg.raw_dir}: not a directory; run `agentune raw_data` first")
    files = sorted(cfg.raw_dir.glob("*.jsonl"), key=lambda p: p.name)
    if not files:
        raise StageError(f"convert.raw_dir={cfg.raw_dir}: no .jsonl files; run `agentune raw_data` first")
    if cfg.token_stats_records:
        base = base_model_path(cfg.base_model)
        if not (base / "tokenizer_config.json").is_file():
            raise StageError(
                f"{base}: no tokenizer_config.json; rebuild the base model (`agentune base_model`)"
            )
    return files


class _Batches:
    """Rows collected into typed Arrow batches (one C++ conversion per batch, not per row)."""

    def __init__(self, path: Path, size: int = 2000):
        import pyarrow as pa
        from datasets.arrow_writer import ArrowWriter

        self.pa = pa
        self.features = _features()
        self.type = self.features.arrow_schema.field("messages").type
        self.writer = ArrowWriter(features=self.features, path=str(path), writer_batch_size=size)
        self.size, self.ids, self.messages = size, [], []

    def add(self, rid: str, messages: list[dict[str, Any]]) -> None:
        self.ids.append(rid)
        self.messages.append(messages)
        if len(self.ids) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.ids:
            pa = self.pa
            table = pa.table(
                {"id": pa.array(self.ids, pa.string()), "messages": pa.array(self.messages, self.type)}
            )
            self.writer.write_table(table)
            self.ids, self.messages = [], []

    def finish(self) -> int:
        self.flush()
        n, _ = self.writer.finalize()
        return n


def parse_line(line: bytes) -> tuple[str, list[dict[str, Any]]]:
    """One JSONL line -> (id, messages); BadRecord (with the id when one can be read) if it is invalid."""
    import orjson

    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _bad("invalid_json", f"invalid JSON: {exc}") from None
    return normalize(obj)


class _Router:
    """Sends each raw line to one place: a reject, the held-out file (by sha256 of the id) or training."""

    def __init__(self, cfg: Config, heldout_fh: BinaryIO, batches: _Batches, rejects_fh: TextIO | None):
        self.cfg, self.heldout_fh, self.batches, self.rejects_fh = cfg, heldout_fh, batches, rejects_fh
        self.stats = Stats()
        self.formats = FormatStats()
        self.roles = dict.fromkeys((*ROLES, "assistant_trained"), 0)
        self.seen: dict[str, tuple[str, int]] = {}
        self.heldout_hash = hashlib.sha256()
        self.token_heap: list[
            tuple[int, str, list[dict[str, Any]]]
        ] = []  # the records with the smallest hash
        self.held_below = round(cfg.heldout_fraction * 1000)

    def reject(self, r: Reject) -> None:
        """Count a bad record and write it to rejects.jsonl, or fail naming it (`on_error: fail`)."""
        self.stats.rejected[r.file] += 1
        self.stats.reasons[r.kind] += 1
        if self.rejects_fh is None:
            raise StageError(
                r.message(self.cfg.raw_dir) + ". Fix the record, or set convert.on_error: skip to write bad "
                f"records to {self.cfg.out / REJECTS} and go on"
            )
        self.rejects_fh.write(json.dumps(r.__dict__, ensure_ascii=False) + "\n")

    def line(self, name: str, no: int, line: bytes | None, size: int, head: bytes) -> None:
        """Validate line `no` of file `name` (None: longer than max_line_bytes) and route it."""
        stats = self.stats
        stats.lines[name] += 1
        if line is None:
            reason = f"line is {size} bytes, longer than convert.max_line_bytes={self.cfg.max_line_bytes}"
            self.reject(Reject(name, no, guess_id(head), "line_too_long", reason, _text(head), size))
            return
        if not line.strip():
            stats.lines[name] -= 1
            stats.blank_lines += 1
            return
        try:
            rid, messages = parse_line(line)
            if rid in self.seen:
                f0, l0 = self.seen[rid]
                raise _bad("duplicate_id", f"duplicate id (first seen at {self.cfg.raw_dir / f0}:{l0})")
        except BadRecord as exc:
            self.reject(Reject(name, no, guess_id(head), exc.kind, str(exc), _text(head), size))
            return
        self.seen[rid] = (name, no)
        self.formats.add(f"{self.cfg.raw_dir / name}:{no}", rid, messages)
        stats.kept[name] += 1
        for m in messages:
            self.roles[m["role"]] += 1
            self.roles["assistant_trained"] += m["loss"]
        digest = hashlib.sha256(rid.encode("utf-8")).digest()
        if _bucket(digest) < self.held_below:
            self._hold_out(name, rid, messages)
        else:
            self._train(rid, messages, digest)

    def _hold_out(self, name: str, rid: str, messages: list[dict[str, Any]]) -> None:
        import orjson

        self.stats.heldout[name] += 1
        out_line = orjson.dumps({"id": rid, "conversation": messages}) + b"\n"
        self.heldout_fh.write(out_line)
        self.heldout_hash.update(out_line)

    def _train(self, rid: str, messages: list[dict[str, Any]], digest: bytes) -> None:
        self.batches.add(rid, messages)
        if self.cfg.token_stats_records:
            item = (-int.from_bytes(digest[8:16], "big"), rid, messages)
            if len(self.token_heap) < self.cfg.token_stats_records:
                heapq.heappush(self.token_heap, item)
            elif item[0] > self.token_heap[0][0]:
                heapq.heapreplace(self.token_heap, item)


def run(cfg: Config) -> None:
    """Validate the raw files and write the converted dataset, the held-out slice and the metrics."""
    from datasets import Dataset, DatasetInfo
    from datasets.table import MemoryMappedTable
    from tqdm import tqdm

    from agentune.core.io import sha256_file

    files = _check_inputs(cfg)
    total_bytes = sum(p.stat().st_size for p in files)

    with atomic_file(cfg.heldout_out, "wb") as heldout_fh, atomic_dir(cfg.out) as out:
        build = out / ".build"
        build.mkdir()
        rejects_fh = open(out / REJECTS, "w", encoding="utf-8") if cfg.on_error == "skip" else None
        batches = _Batches(build / "shard.arrow")
        router = _Router(cfg, heldout_fh, batches, rejects_fh)
        try:
            with tqdm(total=total_bytes, desc="convert", unit="B", unit_scale=True, mininterval=1.0) as bar:
                for path in files:
                    done = 0
                    with open(path, "rb") as fh:
                        for no, line, size, head in read_lines(fh, cfg.max_line_bytes):
                            done += size
                            if no % 1000 == 0:
                                bar.update(done)
                                done = 0
                            router.line(path.name, no, line, size, head)
                    bar.update(done)
                    if router.stats.lines[path.name] == 0:
                        router.reject(
                            Reject(path.name, 0, None, "empty_file", "empty file: no records", "", 0)
                        )
            n_train = batches.finish()
        finally:
            batches.writer.close()
            if rejects_fh is not None:
                rejects_fh.close()
        if n_train == 0:
            raise StageError(
                f"convert: no training records left from {cfg.raw_dir} (all rejected or held out)"
            )

        # The rows are in canonical order (files sorted by name, lines in order) and the Arrow bytes
        # are deterministic, so their hash identifies the training set whatever the directory order.
        fp = sha256_file(build / "shard.arrow")
        table = MemoryMappedTable.from_file(str(build / "shard.arrow"))
        ds = Dataset(table, info=DatasetInfo(features=batches.features), fingerprint=fp[:16])
        ds.save_to_disk(str(out))
        del ds, table
        (build / "shard.arrow").unlink()
        build.rmdir()

        tokens: dict[str, Any] = {"n": 0}
        if router.token_heap:
            samples = [msgs for _, _, msgs in sorted(router.token_heap, key=lambda t: t[1])]
            tokens = token_lengths(cfg.base_model, samples)

        stats = router.stats
        stats.roles.update(router.roles)
        metrics = _metrics(stats, files, n_train, tokens, fp, router.heldout_hash.hexdigest())
        metrics.update(router.formats.summary(cfg.raw_dir))
        ConvertRecord(config=cfg.model_dump(mode="json"), **metrics).write(out)

    write_json(cfg.metrics_out, metrics)
    log.info(
        "convert: %d train, %d held out, %d rejected; tokens p50=%s p99=%s max=%s -> %s",
        n_train,
        metrics["heldout"],
        metrics["rejected"],
        tokens.get("p50"),
        tokens.get("p99"),
        tokens.get("max"),
        cfg.out,
    )


def _text(head: bytes) -> str:
    return head.decode("utf-8", "replace")[:EXCERPT_CHARS]


def _metrics(stats: Stats, files: list[Path], n_train: int, tokens: dict, fp: str, heldout_fp: str) -> dict:
    per_file = {
        p.name: {
            "records": stats.lines[p.name],
            "kept": stats.kept[p.name],
            "rejected": stats.rejected[p.name],
            "heldout": stats.heldout[p.name],
            "train": stats.kept[p.name] - stats.heldout[p.name],
        }
        for p in files
    }
    return {
        "records": sum(stats.lines.values()),
        "kept": sum(stats.kept.values()),
        "rejected": sum(stats.rejected.values()),
        "train": n_train,
        "heldout": sum(stats.heldout.values()),
        "blank_lines": stats.blank_lines,
        "files": per_file,
        "roles": {r: stats.roles[r] for r in (*ROLES, "assistant_trained")},
        "rejects_by_reason": dict(sorted(stats.reasons.items())),
        "tokens": tokens,
        "fingerprint": fp,
        "heldout_fingerprint": heldout_fp,
    }
