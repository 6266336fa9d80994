"""Stage convert: render every training source into the protocol: the tokenized dataset xtuner trains on.

Writes data/converted/ (what xtuner trains on), the held-out records, the leak check and the data metrics.

Sources come from raw_data's `agentune_raw.json` (a folder without it is one Agent-FLAN source). Each
file is read line by line (never the whole corpus in memory) by its format's reader
(`convert.sources`: agent-flan, openai, sharegpt), and every record is validated (JSON, schema, roles,
non-empty content, boolean `loss`, turn order, calls to listed tools, JSON-object arguments, results
answering calls, unique id per source). A bad record names file:line, record id, field and fix.
Writes:
- `out`: a `datasets` save_to_disk folder, columns `id` (`<source>/<record id>`) and `messages` (list of
  {role, content, loss}) with an explicit boolean `loss` on every message: what xtuner's
  `load_from_disk` + `openai_map_fn` read. A source's `max_records` and `weight` pick and repeat its
  training records, seeded (raw_data.seed). Beside it `agentune_convert.json`
  (`artifacts.ConvertRecord`) and, with `on_error: skip`, `rejects.jsonl`.
- `heldout_out`: per source, records whose sha256(id) falls in the held-out slice (or the source's own
  evaluation file), in the raw schema with their `source`; never trained on.
- `metrics_out`: counts per source (kinds, sha256 of its files), file, role, kept/rejected, the leak
  check (exact calls and near-duplicate requests of every evaluation item in training) and
  token-length percentiles measured with the base model's tokenizer and chat template.

The leak check (`evalsets.leak`) stops the stage when an item of a fixed suite (the scenarios, BFCL)
has its call or its request in training; for the held-out records it reports the rates.
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

import orjson
import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, Value
from datasets.arrow_writer import ArrowWriter
from datasets.table import MemoryMappedTable
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer
from tqdm import tqdm

from agentune.convert.config import Config
from agentune.convert.formats import FormatStats
from agentune.convert.leaks import LeakCheck
from agentune.convert.sources import ROLES, BadRecord, Source, SourceFile, read_agent_flan, read_sources
from agentune.core.artifacts import ConvertRecord, RawDataRecord, base_model_path
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, atomic_file, read_json, sha256_file, write_json
from agentune.protocol.react import is_tool_prompt, parse_reply

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]

REJECTS = "rejects.jsonl"
EXCERPT_CHARS = 200


@dataclass
class Reject:
    file: str
    line: int
    id: str | None
    kind: str
    reason: str
    excerpt: str
    bytes: int

    def message(self) -> str:
        if self.line == 0:
            return f"{self.file}: {self.reason}"
        rid = f"record {self.id!r}" if self.id is not None else "record (no id found)"
        return f"{self.file}:{self.line}: {rid}: {self.reason}"


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


def heldout_bucket(rid: str) -> int:
    """A stable bucket in [0, 1000) from the record id: sha256(id), first 8 bytes, mod 1000."""
    return _bucket(hashlib.sha256(rid.encode("utf-8")).digest())


def _bucket(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") % 1000


def is_heldout(rid: str, fraction: float) -> bool:
    return heldout_bucket(rid) < round(fraction * 1000)


def _features():
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
    path = base_model_path(base_dir)
    if not (path / "tokenizer.json").is_file():
        raise StageError(
            f"{path}: no tokenizer.json (a fast tokenizer is needed for the token statistics); "
            "set convert.token_stats_records: 0 to skip them"
        )

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


def _check_inputs(cfg: Config) -> None:
    if not cfg.raw_dir.is_dir():
        raise StageError(f"convert.raw_dir={cfg.raw_dir}: not a directory; run `agentune raw_data` first")
    if not RawDataRecord.exists(cfg.raw_dir) and not any(cfg.raw_dir.glob("*.jsonl")):
        raise StageError(
            f"convert.raw_dir={cfg.raw_dir}: no agentune_raw.json and no .jsonl files; run `agentune raw_data` first"
        )
    if cfg.token_stats_records:
        base = base_model_path(cfg.base_model)
        if not (base / "tokenizer_config.json").is_file():
            raise StageError(
                f"{base}: no tokenizer_config.json; rebuild the base model (`agentune base_model`)"
            )


class _Batches:
    """Rows collected into typed Arrow batches (one C++ conversion per batch, not per row)."""

    def __init__(self, path: Path, size: int = 2000):
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


def parse_line(line: bytes, parse=None) -> tuple[str, list[dict[str, Any]], dict[str, int]]:
    """One JSONL line -> (id, messages, counts) by the source's reader (Agent-FLAN by default)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecord("invalid_json", f"invalid JSON: {exc}") from None
    return (parse or read_agent_flan)(obj)


def record_kind(messages: list[dict[str, Any]]) -> str:
    """`calls` (a call is made), `no_call` (tools offered, none called: declines and direct answers) or
    `chat` (no tool protocol)."""
    if any(m["role"] == "assistant" and parse_reply(m["content"]).kind == "call" for m in messages):
        return "calls"
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    return "no_call" if is_tool_prompt(system) else "chat"


@dataclass
class SourceStats:
    """Counts of one source, for metrics/data.json."""

    kind: str
    records: int = 0
    kept: int = 0
    rejected: int = 0
    heldout: int = 0
    train_records: int = 0  # distinct training records before max_records / weight
    train: int = 0  # training rows after them
    kinds: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)
    sha256: dict[str, str] = field(default_factory=dict)

    def dump(self, source: Source) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "weight": source.weight,
            "max_records": source.max_records,
            "records": self.records,
            "kept": self.kept,
            "rejected": self.rejected,
            "heldout": self.heldout,
            "train_records": self.train_records,
            "train": self.train,
            "kinds": dict(sorted(self.kinds.items())),
            **dict(sorted(self.extra.items())),
            "files_sha256": self.sha256,
        }


class _Router:
    """Sends each raw line to one place: a reject, the held-out file or training (directly, or through
    the source's mix when it has `max_records` or a `weight` other than 1)."""

    def __init__(
        self, cfg: Config, heldout_fh: BinaryIO, batches: _Batches, rejects_fh: TextIO | None, seed: int
    ):
        self.cfg, self.heldout_fh, self.batches, self.rejects_fh, self.seed = (
            cfg,
            heldout_fh,
            batches,
            rejects_fh,
            seed,
        )
        self.stats = Stats()
        self.sources: dict[str, SourceStats] = {}
        self.formats = FormatStats()
        self.leaks = LeakCheck(cfg.leak_check)
        self.roles = dict.fromkeys((*ROLES, "assistant_trained"), 0)
        self.seen: dict[tuple[str, str], str] = {}
        self.heldout_hash = hashlib.sha256()
        self.token_heap: list[
            tuple[int, str, list[dict[str, Any]]]
        ] = []  # the records with the smallest hash
        self.held_below = round(cfg.heldout_fraction * 1000)
        self.buffer: list[tuple[str, list[dict[str, Any]], bytes]] = []  # a mixed source's training records

    def reject(self, r: Reject, source: str | None = None) -> None:
        """Count a bad record and write it to rejects.jsonl, or fail naming it (`on_error: fail`)."""
        self.stats.rejected[r.file] += 1
        self.stats.reasons[r.kind] += 1
        if source:
            self.sources[source].rejected += 1
        if self.rejects_fh is None:
            raise StageError(
                r.message() + ". Fix the record, or set convert.on_error: skip to write bad "
                f"records to {self.cfg.out / REJECTS} and go on"
            )
        self.rejects_fh.write(json.dumps(r.__dict__, ensure_ascii=False) + "\n")

    def line(
        self,
        source: Source,
        sfile: SourceFile,
        where: str,
        no: int,
        line: bytes | None,
        size: int,
        head: bytes,
    ) -> None:
        """Validate line `no` of a source's file (`where`: the path errors name; line None: longer than
        max_line_bytes) and route it."""
        stats, sstats = self.stats, self.sources[source.name]
        stats.lines[where] += 1
        sstats.records += 1
        if line is None:
            reason = f"line is {size} bytes, longer than convert.max_line_bytes={self.cfg.max_line_bytes}"
            self.reject(
                Reject(
                    file=where,
                    line=no,
                    id=guess_id(head),
                    kind="line_too_long",
                    reason=reason,
                    excerpt=_text(head),
                    bytes=size,
                ),
                source.name,
            )
            return
        if not line.strip():
            stats.lines[where] -= 1
            sstats.records -= 1
            stats.blank_lines += 1
            return
        try:
            rid, messages, extra = parse_line(line, self.parse)
            if (source.name, rid) in self.seen:
                raise BadRecord(
                    "duplicate_id", f"duplicate id (first seen at {self.seen[source.name, rid]})", rid
                )
        except BadRecord as exc:
            rid = exc.rid or guess_id(head)
            self.reject(
                Reject(
                    file=where,
                    line=no,
                    id=rid,
                    kind=exc.kind,
                    reason=str(exc),
                    excerpt=_text(head),
                    bytes=size,
                ),
                source.name,
            )
            return
        self.seen[source.name, rid] = f"{where}:{no}"
        self.formats.add(f"{where}:{no}", rid, messages)
        stats.kept[where] += 1
        sstats.kept += 1
        sstats.kinds[record_kind(messages)] += 1
        sstats.extra.update(extra)
        for m in messages:
            self.roles[m["role"]] += 1
            self.roles["assistant_trained"] += m["loss"]
        digest = hashlib.sha256(rid.encode("utf-8")).digest()
        held = sfile.role == "heldout" or (not source.has_heldout_file and _bucket(digest) < self.held_below)
        if held:
            self._hold_out(where, source.name, rid, messages)
            return
        sstats.train_records += 1
        self.leaks.add_training(f"{where}:{no}", messages)
        if source.weight == 1 and source.max_records is None:
            self._train(f"{source.name}/{rid}", messages, digest)
            sstats.train += 1
        else:
            self.buffer.append((rid, messages, digest))

    def start_source(self, source: Source) -> None:
        self.sources[source.name] = SourceStats(source.kind)
        self.parse = source.parser()

    def end_source(self, source: Source) -> None:
        """Apply the source's `max_records` and `weight` to its buffered training records (seeded)."""
        if not self.buffer:
            return

        def key(rid: str) -> bytes:
            return hashlib.sha256(f"{self.seed}:{source.name}:{rid}".encode()).digest()

        ranked = sorted(self.buffer, key=lambda rec: key(rec[0]))
        if source.max_records is not None:
            ranked = ranked[: source.max_records]
        whole, frac = divmod(source.weight, 1)
        copies = {rid: int(whole) for rid, _, _ in ranked}
        for rid, _, _ in ranked[: round(frac * len(ranked))]:
            copies[rid] += 1
        for rid, messages, digest in self.buffer:  # file order, each record's copies together
            for c in range(copies.get(rid, 0)):
                self._train(f"{source.name}/{rid}" + (f"#{c + 1}" if c else ""), messages, digest)
                self.sources[source.name].train += 1
        self.buffer = []

    def _hold_out(self, where: str, source: str, rid: str, messages: list[dict[str, Any]]) -> None:
        self.stats.heldout[where] += 1
        self.sources[source].heldout += 1
        self.leaks.add_heldout(source, rid, messages)
        out_line = orjson.dumps({"id": rid, "source": source, "conversation": messages}) + b"\n"
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


def _source_files(cfg: Config, sources: list[Source]) -> list[tuple[Source, SourceFile, Path, str]]:
    """(source, file, path to read, path errors name: the user's own file where it was copied from)."""
    out = []
    for source in sources:
        folder = cfg.raw_dir / source.name if (cfg.raw_dir / source.name).is_dir() else cfg.raw_dir
        for f in source.files:
            path = folder / f.file
            if not path.is_file():
                raise StageError(
                    f"{path}: missing (listed in {cfg.raw_dir}/agentune_raw.json); rerun `agentune raw_data`"
                )
            out.append((source, f, path, f.origin or str(path)))
    return out


def run(cfg: Config) -> None:
    """Read the sources and write the converted dataset, the held-out records and the metrics."""
    _check_inputs(cfg)
    sources, seed = read_sources(cfg.raw_dir)
    files = _source_files(cfg, sources)
    total_bytes = sum(path.stat().st_size for _, _, path, _ in files)

    with atomic_file(cfg.heldout_out, "wb") as heldout_fh, atomic_dir(cfg.out) as out:
        build = out / ".build"
        build.mkdir()
        rejects_fh = open(out / REJECTS, "w", encoding="utf-8") if cfg.on_error == "skip" else None
        batches = _Batches(build / "shard.arrow")
        router = _Router(cfg, heldout_fh, batches, rejects_fh, seed)
        try:
            with tqdm(total=total_bytes, desc="convert", unit="B", unit_scale=True, mininterval=1.0) as bar:
                for source in sources:
                    router.start_source(source)
                    for src, sfile, path, where in files:
                        if src is not source:
                            continue
                        router.sources[source.name].sha256[sfile.file] = sfile.sha256 or sha256_file(path)
                        done = 0
                        with open(path, "rb") as fh:
                            for no, line, size, head in read_lines(fh, cfg.max_line_bytes):
                                done += size
                                if no % 1000 == 0:
                                    bar.update(done)
                                    done = 0
                                router.line(source, sfile, where, no, line, size, head)
                        bar.update(done)
                        if router.stats.lines[where] == 0:
                            router.reject(
                                Reject(
                                    file=where,
                                    line=0,
                                    id=None,
                                    kind="empty_file",
                                    reason="empty file: no records",
                                    excerpt="",
                                    bytes=0,
                                )
                            )
                    router.end_source(source)
            n_train = batches.finish()
        finally:
            batches.writer.close()
            if rejects_fh is not None:
                rejects_fh.close()
        if n_train == 0:
            raise StageError(
                f"convert: no training records left from {cfg.raw_dir} (all rejected or held out)"
            )
        leak_report = router.leaks.finish()  # raises StageError on a fixed suite's hit: nothing written

        # The rows are in canonical order (sources in params order, files sorted by name, lines in
        # order) and the Arrow bytes are deterministic, so their hash identifies the training set.
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
        metrics = _metrics(
            stats, [where for _, _, _, where in files], n_train, tokens, fp, router.heldout_hash.hexdigest()
        )
        metrics["sources"] = {s.name: router.sources[s.name].dump(s) for s in sources}
        metrics["leak_check"] = leak_report
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


def _metrics(stats: Stats, files: list[str], n_train: int, tokens: dict, fp: str, heldout_fp: str) -> dict:
    per_file = {
        f: {
            "records": stats.lines[f],
            "kept": stats.kept[f],
            "rejected": stats.rejected[f],
            "heldout": stats.heldout[f],
            "train": stats.kept[f] - stats.heldout[f],
        }
        for f in files
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
