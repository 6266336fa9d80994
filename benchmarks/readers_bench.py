"""Benchmark `convert`'s readers: records/s and peak RSS for each source format, against the Agent-FLAN
reader in the same run.

    .venv/bin/python benchmarks/readers_bench.py [--records 100000] [--repeats 2]

Corpora of `--records` conversations per format, each read by `convert.run` in a fresh subprocess (so
peak RSS is each one's own), one source at a time, `--repeats` times (best kept):
- agent-flan: the sample generator's seven files (the embedded default's data);
- openai: OpenAI fine-tuning JSONL with tools (examples/own-tools/make_data.py's conversations);
- sharegpt: the same conversations in LLaMA-Factory's ShareGPT shape.
Everything `convert` does is timed: parsing, validation, rendering into the protocol, the held-out
split, the leak check's training index (MinHash LSH) and the Arrow dataset; not the token statistics
or BFCL's download (`leak_check.fixed_suites: []`). Prints records/s, MB/s, wall time and peak RSS,
and each reader's ratio to the agent-flan reader.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONVERT = r"""
import json, resource, sys, time
from pathlib import Path
from datasets import Dataset  # imported before the clock starts, as for every reader
from agentune import convert
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
convert.run(convert.Config(raw_dir=raw, out=out / "converted", heldout_out=out / "heldout.jsonl",
                           metrics_out=out / "data.json", token_stats_records=0, leak_check={"fixed_suites": []}))
t1 = time.perf_counter()
m = json.loads((out / "data.json").read_text())
print(json.dumps({"work_s": t1 - t0, "records": m["kept"], "rejected": m["rejected"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def own_tools_records(n: int) -> list[dict]:
    spec = importlib.util.spec_from_file_location("make_data", REPO / "examples/own-tools/make_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_data"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.records(n, seed=0, held_out=False)


def to_sharegpt(rec: dict) -> dict:
    """An OpenAI record in LLaMA-Factory's ShareGPT-with-tools shape."""
    turns = []
    for m in rec["messages"]:
        if m["role"] == "user":
            turns.append({"from": "human", "value": m["content"]})
        elif m["role"] == "tool":
            turns.append({"from": "observation", "value": m["content"]})
        elif m.get("tool_calls"):
            (call,) = m["tool_calls"]
            value = {"name": call["function"]["name"], "arguments": json.loads(call["function"]["arguments"])}
            turns.append({"from": "function_call", "value": json.dumps(value)})
        else:
            turns.append({"from": "gpt", "value": m["content"]})
    return {"conversations": turns, "tools": json.dumps([t["function"] for t in rec["tools"]])}


def write_source(raw: Path, name: str, kind: str, lines: list[str]) -> None:
    from agentune.core.artifacts import RawDataRecord

    (raw / name).mkdir(parents=True)
    (raw / name / "data.jsonl").write_text("".join(lines))
    files = [{"file": "data.jsonl", "role": "train", "lines": len(lines)}]
    RawDataRecord(seed=0, sources=[{"name": name, "kind": kind, "files": files}]).write(raw)


def run(raw: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CONVERT, str(raw), str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"convert failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from agentune import raw_data

    with tempfile.TemporaryDirectory(prefix="readers-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        raw_data.run(raw_data.Config(out=tmp / "agent-flan", sample={"n_records": args.records}))
        openai = own_tools_records(args.records)
        write_source(tmp / "openai", "openai", "openai", [json.dumps(r) + "\n" for r in openai])
        write_source(
            tmp / "sharegpt", "sharegpt", "sharegpt", [json.dumps(to_sharegpt(r)) + "\n" for r in openai]
        )
        print(f"corpora: {args.records} records each, written in {time.perf_counter() - t0:.0f} s")
        rows = {}
        for name in ("agent-flan", "openai", "sharegpt"):
            raw = tmp / name
            size = sum(p.stat().st_size for p in raw.rglob("*.jsonl"))
            runs = [run(raw, tmp / f"out-{name}-{i}") for i in range(args.repeats)]
            rows[name] = {"work_s": min(r["work_s"] for r in runs), "peak_rss_mib": min(r["peak_rss_mib"] for r in runs),
                          "records": runs[0]["records"], "rejected": runs[0]["rejected"], "mb": size / 1e6}  # fmt: skip
        base = rows["agent-flan"]
        print(f"\n{'reader':11s} {'records':>8s} {'MB':>7s} {'wall s':>7s} {'records/s':>10s} {'MB/s':>6s} "
              f"{'peak RSS MiB':>13s} {'rec/s ratio':>12s} {'RSS ratio':>10s}")  # fmt: skip
        for name, r in rows.items():
            rate = r["records"] / r["work_s"]
            print(f"{name:11s} {r['records']:8d} {r['mb']:7.1f} {r['work_s']:7.1f} {rate:10.0f} {r['mb'] / r['work_s']:6.2f} "
                  f"{r['peak_rss_mib']:13.0f} {rate / (base['records'] / base['work_s']):11.2f}x "
                  f"{r['peak_rss_mib'] / base['peak_rss_mib']:9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
