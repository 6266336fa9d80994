"""The batching engine: concurrent requests share forward passes, a bounded queue says 429 when full.

One worker thread owns the model. It takes the first waiting request, gathers the requests that
follow it closely (each arrival within `batch_window_s` of the previous one, up to `max_batch`), and
decodes them as one batch with the
project's decoder (`inference.decoding.decode`: KV cache, shared-prefix prefill, finished rows leave
the batch). Each row has its own sampling (greedy at temperature 0, else temperature / top-p with its
own seeded generator), token limit, stop strings and `tool_choice` plan (`constrain`). Requests that
arrive while a batch runs wait for the next one; a full waiting queue refuses new requests at once.
The keys and values of the last batch's prompt prefix are kept (`decoding.PrefixCache`): an agent's
next request, which repeats the tool prompt and the conversation so far, computes only what is new.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from agentune.inference.decoding import PrefixCache, decode
from agentune.serve.constrain import PlanState, Segment
from agentune.serve.schema import RequestError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request for the engine. `on_text` (optional) receives the reply's text as it grows, in
    pieces, then None when the reply is done; it is called from the worker thread."""

    ids: list[int]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop_strings: list[str] = field(default_factory=list)
    plan: list[Segment] | None = None
    on_text: Callable[[str | None], None] | None = None
    future: Future = field(default_factory=Future)


@dataclass
class Result:
    text: str  # the reply, without its stop token or stop string
    n_prompt: int
    n_tokens: int  # tokens generated, the stop token included
    finish: str  # "stop" or "length"


def _notify(job: Job, piece: str | None) -> None:
    """Pass streamed text to the job's listener; a listener that is gone (a closed connection or event
    loop) does not stop the batch."""
    if job.on_text is None:
        return
    try:
        job.on_text(piece)
    except Exception:  # the client went away: its reply is still finished, then discarded
        log.debug("stream listener gone", exc_info=True)


class _Row:
    """A job while it decodes: its tokens, text, plan state and sampler."""

    def __init__(self, job: Job, engine: Engine):
        import torch

        self.job, self.engine = job, engine
        self.tokens: list[int] = []
        self.text, self.sent, self.finish = "", 0, "length"
        # the text is needed while decoding only to find stop strings or to stream it
        self.live_text = bool(job.stop_strings) or job.on_text is not None
        self.plan = PlanState(job.plan, engine.newline_ids, engine.has_newline) if job.plan else None
        self.generator = torch.Generator().manual_seed(job.seed) if job.seed is not None else None

    def choose(self, logits) -> int:
        import torch

        allowed = self.plan.allowed() if self.plan else None
        if allowed is not None:
            masked = torch.full_like(logits, float("-inf"))
            masked[allowed] = logits[allowed]
            logits = masked
        elif self.plan and not self.plan.may_stop():
            logits = logits.clone()
            logits[self.engine.stop_ids] = float("-inf")
        if self.job.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / self.job.temperature, dim=-1)
        if self.job.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            drop = sorted_p.cumsum(0) - sorted_p > self.job.top_p
            sorted_p[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def step(self, logits) -> tuple[int, bool]:
        """Choose and record the next token; whether the reply is finished."""
        tok = self.choose(logits)
        self.tokens.append(tok)
        if self.plan:
            self.plan.advance(tok)
        if tok in self.engine.stop_set and (self.plan is None or self.plan.may_stop()):
            self.finish = "stop"
            self._flush()
            return tok, True
        if self.live_text:
            self.text = self.engine.detokenize(self.tokens)
            for s in self.job.stop_strings:
                if s in self.text:
                    self.text, self.finish = self.text[: self.text.index(s)], "stop"
                    self._flush()
                    return tok, True
        done = len(self.tokens) >= self.job.max_new_tokens
        self._flush(final=done)
        return tok, done

    def _flush(self, final: bool = True) -> None:
        """Send the text not sent yet; mid-reply, hold back what may be a partial character or the start
        of a stop string."""
        if self.job.on_text is None:
            return
        end = len(self.text)
        if not final:
            if self.text.endswith("\ufffd"):
                end = len(self.text.rstrip("\ufffd"))
            hold = max((len(s) - 1 for s in self.job.stop_strings), default=0)
            end = min(end, len(self.text) - hold)
        if end > self.sent:
            _notify(self.job, self.text[self.sent : end])
            self.sent = end

    def result(self) -> Result:
        text = self.text if self.live_text else self.engine.detokenize(self.tokens)
        return Result(text, len(self.job.ids), len(self.tokens), self.finish)


class Engine:
    """Owns the model (a `LocalBackend`); `submit` a Job, await its future."""

    def __init__(
        self,
        backend,
        max_batch: int = 8,
        max_queue: int = 64,
        batch_window_s: float = 0.02,
        prefix_cache: bool = True,
    ):
        self.backend = backend
        self.tokenizer, self.model = backend.tokenizer, backend.model
        self.max_batch, self.batch_window_s = max_batch, batch_window_s
        self.stop_ids = list(backend.stop_ids)
        self.stop_set = set(self.stop_ids)
        self.context_length = getattr(backend, "context_length", None) or (
            int(getattr(self.model.config, "max_position_embeddings", 0) or 0) or None
        )
        self.lock = threading.Lock()  # a fast tokenizer must not be used by two threads at once
        self.newline_ids = self.encode_text("\n")[-1:]
        self._has_newline: dict[int, bool] = {}
        # the last prompt prefix's keys and values, reused by the next batch
        self.prefix: PrefixCache | None = PrefixCache() if prefix_cache else None
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.batches = 0  # batches run (for the benchmark and tests)
        self.thread = threading.Thread(target=self._run, name="agentune-engine", daemon=True)
        self.thread.start()

    # -- tokenizer, guarded -------------------------------------------------------------------------
    def encode_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        with self.lock:
            return self.backend.encode(messages)

    def encode_text(self, text: str) -> list[int]:
        with self.lock:
            return self.tokenizer.encode(text, add_special_tokens=False)

    def detokenize(self, tokens: list[int]) -> str:
        kept = [t for t in tokens if t not in self.stop_set]
        with self.lock:
            return self.tokenizer.decode(kept, skip_special_tokens=False)

    def has_newline(self, token: int) -> bool:
        if token not in self._has_newline:
            with self.lock:
                self._has_newline[token] = "\n" in self.tokenizer.decode([token])
        return self._has_newline[token]

    # -- requests -----------------------------------------------------------------------------------
    def submit(self, job: Job) -> Future:
        """Queue `job`; a 429 RequestError when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise RequestError(
                f"the server is at capacity ({self.queue.maxsize} requests waiting); retry later",
                status=429,
                code="rate_limit_exceeded",
            ) from None
        return job.future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _gather(self, first: Job) -> list[Job]:
        """`first` and the requests that follow it closely: the batch closes when none has arrived for
        `batch_window_s`, when it has `max_batch`, or `4 * batch_window_s` after the first."""
        batch, start = [first], time.monotonic()
        deadline = start + self.batch_window_s
        while len(batch) < self.max_batch:
            try:
                job = self.queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if job is None:
                self.queue.put(None)
                break
            batch.append(job)
            deadline = min(time.monotonic() + self.batch_window_s, start + 4 * self.batch_window_s)
        return batch

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = self._gather(first)
            try:
                results = self._generate(batch)
            except Exception as exc:  # every waiting request gets the error, the worker goes on
                log.exception("batch of %d failed", len(batch))
                for job in batch:
                    _notify(job, None)
                    job.future.set_exception(exc)
                continue
            for job, res in zip(batch, results, strict=True):
                _notify(job, None)
                job.future.set_result(res)

    def _generate(self, batch: list[Job]) -> list[Result]:
        import torch

        rows = [_Row(job, self) for job in batch]

        def pick(alive: list[int], logits) -> tuple[list[int], list[bool]]:
            chosen, finished = [], []
            for j, row in enumerate(alive):
                tok, done = rows[row].step(logits[j])
                chosen.append(tok)
                finished.append(done)
            return chosen, finished

        self.batches += 1
        with torch.inference_mode():
            decode(
                self.model,
                [job.ids for job in batch],
                pick,
                self.backend.pad_id,
                max(job.max_new_tokens for job in batch),
                self.backend.device,
                keep=self.prefix,
            )
        return [row.result() for row in rows]


class LlamaCppEngine(Engine):
    """The same queue, sampling, stops, streaming and `tool_choice` plans over llama.cpp decoding of a
    GGUF (`inference.llama_cpp.LlamaCppBackend`): the requests of a batch decode one after another,
    each reusing the KV cache of the prompt before it as far as their prefixes agree."""

    def __init__(self, backend, max_batch: int = 8, max_queue: int = 64, batch_window_s: float = 0.02):
        super().__init__(backend, max_batch, max_queue, batch_window_s, prefix_cache=False)

    def _generate(self, batch: list[Job]) -> list[Result]:
        import torch

        self.batches += 1
        rows = [_Row(job, self) for job in batch]
        for row in rows:
            logits = self.backend.prefill(row.job.ids)
            while True:
                tok, done = row.step(torch.from_numpy(logits))
                if done:
                    break
                logits = self.backend.step(tok)
        return [row.result() for row in rows]
