"""Benchmark `convert` against the reference conversion on a 34,442-record Agent-FLAN-shaped corpus.

    .venv/bin/python benchmarks/convert_bench.py [--records 34442] [--repeats 2]

The corpus is the sample generator's output at the size of the full Agent-FLAN release. Both
approaches run in fresh subprocesses (so peak RSS is each one's own), alternately, `--repeats` times:
- reference: the tutorial's script (read every line of every file into a list, `Dataset.from_list`,
  `save_to_disk`);
- agentune: `convert.run` (streaming validation, arrow written batch by batch, held-out split,
  fingerprint), without the token-length statistics (the reference computes none), then once more
  with them, reported separately.
Prints records/s, wall time and peak RSS of each (best of the repeats) and agentune/reference ratios.
Targets: wall <= 1.0x, peak RSS <= 0.5x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
from datasets import Dataset
src, out = sys.argv[1], sys.argv[2]
t1 = time.perf_counter()
ds = []
for file in os.listdir(src):
    if not file.endswith(".jsonl"):
        continue
    with open(os.path.join(src, file)) as f:
        for item in f.readlines():
            conv = json.loads(item)
            ds.append({"messages": conv["conversation"]})
Dataset.from_list(ds).save_to_disk(out)
t2 = time.perf_counter()
print(json.dumps({"work_s": t2 - t1, "total_s": t2 - t0, "records": len(ds),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

AGENTUNE = r"""
import json, logging, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from datasets import Dataset  # same import cost as the reference
from agentune import convert
src, out, base, tokens = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
t1 = time.perf_counter()
convert.run(convert.Config(raw_dir=src, base_model=base, out=out / "converted", leak_check={"fixed_suites": []},
                           heldout_out=out / "heldout.jsonl", metrics_out=out / "data.json",
                           token_stats_records=tokens))
t2 = time.perf_counter()
m = json.loads((out / "data.json").read_text())
print(json.dumps({"work_s": t2 - t1, "total_s": t2 - t0, "records": m["kept"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def best(results: list[dict]) -> dict:
    return {
        "work_s": min(r["work_s"] for r in results),
        "process_s": min(r["process_s"] for r in results),
        "peak_rss_mib": min(r["peak_rss_mib"] for r in results),
        "records": results[0]["records"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=34442)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--base-model", default="models/base", help="for the token-statistics run")
    args = parser.parse_args()

    from agentune import raw_data

    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        tmp = Path(tmp)
        raw = tmp / "raw"
        t0 = time.perf_counter()
        raw_data.run(raw_data.Config(out=raw, sample={"n_records": args.records, "seed": 0}))
        size_mib = sum(p.stat().st_size for p in raw.rglob("*.jsonl")) / 2**20
        print(
            f"corpus: {args.records} records, {size_mib:.1f} MiB in 7 files (generated in "
            f"{time.perf_counter() - t0:.1f} s)"
        )

        ref, ours = [], []
        for i in range(args.repeats):
            ref.append(run(REFERENCE, str(raw / "agent-flan"), str(tmp / f"ref{i}")))
            ours.append(run(AGENTUNE, str(raw), str(tmp / f"ours{i}"), args.base_model, "0"))
        r, o = best(ref), best(ours)
        rows = [("reference (from_list)", r), ("agentune convert", o)]
        tok = None
        if Path(args.base_model, "agentune_base.json").is_file():
            tok = run(AGENTUNE, str(raw), str(tmp / "ours-tok"), args.base_model, "2000")
            rows.append(("agentune convert + token stats (2000 records)", best([tok])))

        print(
            f"\n{'approach':48s} {'work s':>8s} {'process s':>10s} {'records/s':>10s} {'peak RSS MiB':>13s}"
        )
        for name, x in rows:
            print(
                f"{name:48s} {x['work_s']:8.2f} {x['process_s']:10.2f} {args.records / x['work_s']:10.0f} "
                f"{x['peak_rss_mib']:13.0f}"
            )
        print(
            f"\nratio agentune/reference: wall (work) {o['work_s'] / r['work_s']:.2f}x, "
            f"wall (process) {o['process_s'] / r['process_s']:.2f}x, "
            f"peak RSS {o['peak_rss_mib'] / r['peak_rss_mib']:.2f}x  (targets: <= 1.0x, <= 0.5x)"
        )
        if tok:
            t = best([tok])
            print(
                f"with token stats: wall (work) {t['work_s'] / r['work_s']:.2f}x, "
                f"peak RSS {t['peak_rss_mib'] / r['peak_rss_mib']:.2f}x"
            )


if __name__ == "__main__":
    main()
