"""The embedded default's goals next to what this `make demo` reached (read from metrics/eval.json).

    .venv/bin/python scripts/demo_summary.py [--seconds N]   # N: wall time of `dvc repro`, if measured

A goal a run misses is printed as missed, with its number: nothing here fails the demo.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: (suite, metric, goal, how the goal reads): the merged model's goals on the demo's own evaluation.
GOALS = (
    ("bfcl_irrelevance", "irrelevance_no_call", 0.60, ">= 0.60"),
    ("bfcl_simple_python", "call_em", 0.50, ">= 0.50"),
    ("heldout", "call_em", 0.60, ">= 0.60"),
)
DEMO_MINUTES = 20


def rows(merged: dict) -> list[tuple[str, str, str, bool]]:
    """(metric, reached, goal, met) for every goal."""
    out = []
    for suite, metric, goal, text in GOALS:
        value = merged.get(suite, {}).get(metric)
        n = merged.get(suite, {}).get(f"{metric}_n")
        reached = "-" if value is None else f"{value:.2f} (n={n})"
        out.append((f"{suite} {metric}", reached, text, value is not None and value >= goal))
    sc = merged.get("scenarios", {})
    cases = sc.get("e2e_success_n") or 0
    solved = round((sc.get("e2e_success") or 0) * cases)
    out.append(("scenarios e2e_success", f"{solved}/{cases}", ">= 3/6", cases > 0 and solved >= 3))
    stopped = {s: a["stopped"] for s, a in merged.items() if isinstance(a, dict) and "stopped" in a}
    worst = min(stopped.values(), default=None)
    shown = ", ".join(f"{s} {v:.2f}" for s, v in stopped.items())
    out.append(("stopped, every suite", shown or "-", "1.00", worst == 1.0))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", default="metrics/eval.json")
    p.add_argument("--seconds", type=float, default=None, help="wall time of the pipeline run")
    args = p.parse_args()
    path = Path(args.metrics)
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run `dvc repro` (or `make demo`) first")
    merged = json.loads(path.read_text())["models"].get("merged")
    if merged is None:
        raise SystemExit(f"{path}: has no merged model; evaluate.models must include merged")
    table = rows(merged)
    if args.seconds is not None:
        minutes = args.seconds / 60
        table.append(
            ("`dvc repro` wall time", f"{minutes:.1f} min", f"<= {DEMO_MINUTES} min", minutes <= DEMO_MINUTES)
        )
    print("\n| merged model | reached | goal | |\n|---|---|---|---|")
    for name, reached, goal, met in table:
        print(f"| {name} | {reached} | {goal} | {'met' if met else 'missed'} |")
    ggufs = sorted(Path("models/gguf").glob("agentune-*.gguf"))
    print("\nUse the agent: agentune serve --model models/merged (OpenAI API on 127.0.0.1:8000, README)")
    if ggufs:
        print(
            f"GGUF ({', '.join(g.name for g in ggufs)}): `make llama-cpp`, then agentune serve --engine "
            "llama.cpp --model models/gguf/agentune-q8_0.gguf; Ollama: ollama create agentune -f models/gguf/Modelfile"
        )


if __name__ == "__main__":
    main()
