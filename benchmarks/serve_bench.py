"""`agentune serve` under concurrent load: N requests at once vs the same N one at a time, same process.

    .venv/bin/python benchmarks/serve_bench.py [--model models/merged] [--concurrency 8] [--rounds 2]

A real server (uvicorn on 127.0.0.1, the FastAPI app, the batching engine) answers real HTTP requests
from threads: first each of the N requests alone, one after another (the baseline), then all N at
once. Requests are what one agent sends: the same two tools (calculator, get_weather), a different
question each, greedy, the same `max_tokens`, so both runs generate the same replies. Prints
requests/s of each, the throughput ratio (target >= 3x at 8 concurrent for the 135M model on a 2-core
CPU) and p50/p95 latency, twice: batching alone (no prefix cache), then with the prefix cache, which
also speeds up the one-at-a-time baseline.

Uses models/merged, else models/base, else the tiny model built on the spot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bodies(n: int, max_tokens: int) -> list[dict]:
    from agentune.catalogue import REGISTRY

    tools = [REGISTRY[name][0] for name in ("calculator", "get_weather")]
    cities = ("Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Perth", "Quito", "Seoul")
    out = []
    for i in range(n):
        question = (
            f"What is {17 * i + 3} * {i + 2}?"
            if i % 2 == 0
            else f"What is the weather in {cities[i % len(cities)]}?"
        )
        out.append(
            {
                "model": "bench",
                "messages": [{"role": "user", "content": question}],
                "tools": [{"type": "function", "function": t} for t in tools],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
        )
    return out


def ask(client, url: str, body: dict) -> tuple[float, int, str]:
    """One request: (latency s, completion tokens, the reply as text: content | calls)."""
    t0 = time.perf_counter()
    r = client.post(url, json=body)
    r.raise_for_status()
    data = r.json()
    msg = data["choices"][0]["message"]
    calls = [(c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or []]
    return time.perf_counter() - t0, data["usage"]["completion_tokens"], f"{msg.get('content')}|{calls}"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    import httpx

    from agentune.serve import build_parser, load
    from agentune.serve.app import serving

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="repeat both runs; the best round of each counts")
    p.add_argument("--max-tokens", type=int, default=48)
    args = p.parse_args()

    model = args.model or next(
        (m for m in ("models/merged", "models/base") if Path(m, "config.json").is_file()), None
    )
    if model is None:
        from agentune import base_model

        model = str(Path(tempfile.mkdtemp()) / "base")
        base_model.run(base_model.Config(source="tiny", out=model))
    serve_args = build_parser().parse_args(
        ["--model", model, "--name", "bench", "--max-batch", str(args.concurrency), "--port", "0"]
    )
    engine, opts = load(serve_args)
    stack = contextlib.ExitStack()
    url = stack.enter_context(serving(engine, opts)) + "/chat/completions"
    reqs = bodies(args.concurrency, args.max_tokens)
    client = httpx.Client(timeout=600)

    def one(body: dict) -> tuple[float, int, str]:
        return ask(client, url, body)

    def measure() -> dict:
        one(reqs[0])  # warm-up
        seq_best = con_best = None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            seq = [one(b) for b in reqs]
            seq_wall = time.perf_counter() - t0
            batches_before = engine.batches
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                con = list(pool.map(one, reqs))
            con_wall = time.perf_counter() - t0
            if seq_best is None or seq_wall < seq_best[0]:
                seq_best = (seq_wall, seq)
            if con_best is None or con_wall < con_best[0]:
                con_best = (con_wall, con, engine.batches - batches_before)
        return {"seq": seq_best, "con": con_best}

    from agentune.inference.decoding import PrefixCache

    runs = {}
    for label, keep in (
        ("batching alone (--no-prefix-cache)", None),
        ("with the prefix cache (default)", PrefixCache()),
    ):
        engine.prefix = keep
        runs[label] = measure()
    stack.close()
    engine.close()

    n = len(reqs)
    print(f"model {model}, {n} requests, max_tokens {args.max_tokens}, load average {os.getloadavg()[0]:.2f}")
    base_seq = None
    for label, r in runs.items():
        (seq_wall, seq), (con_wall, con, n_batches) = r["seq"], r["con"]
        base_seq = base_seq or seq_wall
        same = sum(a[2] == b[2] for a, b in zip(seq, con, strict=True))
        print(f"-- {label}: {sum(t for _, t, _ in con)} tokens generated")
        print(f"one at a time : {seq_wall:7.2f} s  {n / seq_wall:6.2f} req/s  "
              f"p50 {pct([x for x, _, _ in seq], .5):6.2f} s  p95 {pct([x for x, _, _ in seq], .95):6.2f} s")  # fmt: skip
        print(f"{n} concurrent  : {con_wall:7.2f} s  {n / con_wall:6.2f} req/s  "
              f"p50 {pct([x for x, _, _ in con], .5):6.2f} s  p95 {pct([x for x, _, _ in con], .95):6.2f} s  "
              f"({n_batches} batch(es))")  # fmt: skip
        print(f"throughput ratio (concurrent / one at a time): {seq_wall / con_wall:.2f}x  (target >= 3x); "
              f"against one at a time without the cache: {base_seq / con_wall:.2f}x")  # fmt: skip
        print(f"replies identical to one-at-a-time: {same}/{n}")


if __name__ == "__main__":
    main()
