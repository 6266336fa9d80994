"""`agentune serve` on llama.cpp (a GGUF) against the built-in engine (the merged model), same process.

    .venv/bin/python benchmarks/engine_bench.py [--merged models/merged] [--gguf models/gguf/agentune-q8_0.gguf]
                                                [--concurrency 8] [--rounds 2] [--max-tokens 64]

For each engine, a real server (uvicorn on 127.0.0.1) answers the requests of serve_bench.py (two
tools, a different question each, greedy): first one at a time, then all at once. Prints completion
tokens/s and p50/p95 latency of each, and llama.cpp's single-request tokens/s over the built-in
engine's (target >= 3x on this CPU). The best of `--rounds` counts. Needs the llama.cpp runtime
(`make llama-cpp`) and the gguf stage's output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

from serve_bench import ask, bodies, pct

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_engine(serve_argv: list[str], reqs: list[dict], rounds: int) -> dict:
    """One-at-a-time and concurrent runs through a real server: (wall s, [(latency, tokens, reply)])."""
    import httpx

    from agentune.serve import build_parser, load
    from agentune.serve.app import serving

    engine, opts = load(build_parser().parse_args(serve_argv))
    client = httpx.Client(timeout=900)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serving(engine, opts)) + "/chat/completions"

        def one(body: dict) -> tuple[float, int, str]:
            return ask(client, url, body)

        one(reqs[0])  # warm-up
        best: dict = {}
        for _ in range(rounds):
            t0 = time.perf_counter()
            seq = [one(b) for b in reqs]
            runs = {"one at a time": (time.perf_counter() - t0, seq)}
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(reqs)) as pool:
                con = list(pool.map(one, reqs))
            runs[f"{len(reqs)} concurrent"] = (time.perf_counter() - t0, con)
            for k, v in runs.items():
                if k not in best or v[0] < best[k][0]:
                    best[k] = v
    engine.close()
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--merged", default="models/merged")
    p.add_argument("--gguf", default="models/gguf/agentune-q8_0.gguf")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args()

    reqs = bodies(args.concurrency, args.max_tokens)
    common = ["--name", "bench", "--max-batch", str(args.concurrency), "--port", "0"]
    engines = {
        "built-in (transformers)": ["--model", args.merged, *common],
        "llama.cpp": ["--model", args.gguf, "--engine", "llama.cpp", *common],
    }
    results = {name: run_engine(argv, reqs, args.rounds) for name, argv in engines.items()}
    print(f"merged {args.merged}, gguf {args.gguf}, {len(reqs)} requests, max_tokens {args.max_tokens}, "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")  # fmt: skip
    speed = {}
    for name, runs in results.items():
        for mode, (wall, rows) in runs.items():
            tokens = sum(t for _, t, _ in rows)
            speed[name, mode] = tokens / wall
            lat = [x for x, _, _ in rows]
            print(f"{name:24s} {mode:14s}: {wall:7.2f} s  {tokens:5d} tokens  {tokens / wall:7.1f} tok/s  "
                  f"p50 {pct(lat, .5):6.2f} s  p95 {pct(lat, .95):6.2f} s")  # fmt: skip
    names = list(results)
    for mode in results[names[0]]:
        print(
            f"{mode}: llama.cpp / built-in tokens/s = {speed[names[1], mode] / speed[names[0], mode]:.2f}x"
            + ("  (target >= 3x)" if mode == "one at a time" else "")
        )
    same = sum(
        a[2] == b[2]
        for a, b in zip(
            results[names[0]]["one at a time"][1], results[names[1]]["one at a time"][1], strict=True
        )
    )
    print(f"same reply on both engines: {same}/{len(reqs)}")


if __name__ == "__main__":
    main()
