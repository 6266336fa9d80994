"""Evaluation outputs: metrics/eval.json, the per-iteration curve for `dvc plots`, reports/eval.md + PNGs.

`results` is `{model_name: {"iteration": int, "kind": "base"|"checkpoint"|"merged", "suites":
{suite: aggregate}, "seconds": float, "tokens": int}}`, in evaluation order (base first).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from agentune.core.io import atomic_file, write_json
from agentune.evaluate.results import ModelRun
from agentune.evaluate.scoring import METRICS


def deltas(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """merged (or the last model) minus base, per suite and metric."""
    if "base" not in results or len(results) < 2:
        return {}
    after = results["merged"] if "merged" in results else list(results.values())[-1]
    out: dict[str, dict[str, float]] = {}
    for suite, base_m in results["base"]["suites"].items():
        after_m = after["suites"].get(suite, {})
        for metric, b in base_m.items():
            a = after_m.get(metric)
            if metric.endswith("_n") or metric == "n" or a is None or b is None:
                continue
            out.setdefault(suite, {})[metric] = round(a - b, 4)
    return out


def write_metrics(path: Path, results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """metrics/eval.json: per model and suite the rates with their n, deltas, timing, resolved config."""
    doc = {
        "models": {
            name: {
                "iteration": r["iteration"],
                "kind": r["kind"],
                "seconds": r["seconds"],
                "tokens_per_s": r["tokens_per_s"],
                "mean_gen_tokens": r["mean_gen_tokens"],
                **r["suites"],
            }
            for name, r in results.items()
        },  # fmt: skip
        "delta_merged_minus_base": deltas(results),
        **meta,
    }
    write_json(path, doc)
    return doc


def gguf_parity(results: dict[str, Any], samples: dict[str, ModelRun]) -> dict[str, Any]:
    """Each GGUF against the merged model it was converted from: the share of prompts (every suite,
    every scenario step) with the same greedy reply, per suite and in all, and each metric's difference
    (GGUF - merged; sample counts left out)."""
    if "merged" not in results:
        return {}
    merged = {x.key: x.output for x in samples["merged"].samples}
    reference = results["merged"]["suites"]
    out = {}
    for name, r in results.items():
        if r["kind"] != "gguf":
            continue
        by_suite: dict[str, list[bool]] = {}
        for x in samples[name].samples:
            if x.key in merged:
                by_suite.setdefault(x.suite, []).append(x.output == merged[x.key])
        every = [same for flags in by_suite.values() for same in flags]
        diffs = {
            f"{suite}/{metric}": round(v - reference[suite][metric], 4)
            for suite, agg in r["suites"].items()
            for metric, v in agg.items()
            if not metric.endswith("_n") and metric != "n" and isinstance(v, (int, float))
            and isinstance(reference.get(suite, {}).get(metric), (int, float))
        }  # fmt: skip
        out[name] = {
            "same_reply": round(sum(every) / len(every), 4) if every else None,
            "n": len(every),
            "same_reply_by_suite": {s: round(sum(f) / len(f), 4) for s, f in sorted(by_suite.items())},
            "max_abs_metric_delta": max((abs(v) for v in diffs.values()), default=0.0),
            "metric_deltas": diffs,
        }
    return out


def write_curve(path: Path, results: dict[str, Any], headline: list[str]) -> list[str]:
    """A TSV for `dvc plots`: one row per model, x = iteration (base = 0), one column per headline metric.

    Columns are named as `evaluate.headline` names the metrics, so dvc.yaml's plot reads its `y` from there.
    """
    cols = list(headline)
    with atomic_file(path) as fh:
        fh.write("\t".join(["iteration", "model", *cols]) + "\n")
        for name, r in results.items():
            vals = []
            for m in headline:
                suite, metric = m.split("/", 1)
                v = r["suites"].get(suite, {}).get(metric)
                vals.append("" if v is None else f"{v:.4f}")
            fh.write("\t".join([str(r["iteration"]), name, *vals]) + "\n")
    return cols


def write_samples(path: Path, samples: dict[str, ModelRun]) -> None:
    """Every scored reply (prompt id, raw output, parsed call, verdicts), then every scenario case
    (`"case": true`, solved or not), one JSON line each."""
    with atomic_file(path) as fh:
        for model, run in samples.items():
            for rec in [*run.samples, *run.cases]:
                fh.write(
                    json.dumps({"model": model, **rec.to_json()}, ensure_ascii=False, default=str) + "\n"
                )


def mcnemar(base: list[float], after: list[float]) -> tuple[int, int, float]:
    """Exact two-sided McNemar test on paired 0/1 outcomes: (base-only wins, after-only wins, p)."""
    b = sum(1 for x, y in zip(base, after, strict=True) if x == 1 and y == 0)
    c = sum(1 for x, y in zip(base, after, strict=True) if x == 0 and y == 1)
    n = b + c
    if n == 0:
        return b, c, 1.0
    k = min(b, c)
    p = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return b, c, min(1.0, p)


def bootstrap_ci(
    base: list[float], after: list[float], reps: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% paired bootstrap interval of mean(after - base)."""
    diffs = [a - b for a, b in zip(after, base, strict=True)]
    if not diffs:
        return 0.0, 0.0
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(reps))
    return round(means[int(0.025 * reps)], 4), round(means[int(0.975 * reps) - 1], 4)


def paired(samples: dict[str, ModelRun], a: str, b: str, suite: str, metric: str) -> tuple[list, list]:
    """Outcomes of `metric` on the samples both models share (same id and step) in `suite`
    (`heldout:<source>`: the held-out samples of one source)."""
    suite, _, source = suite.partition(":")

    def rows(model: str) -> dict:
        run = samples.get(model, ModelRun())
        return {
            (r.id, r.step): r.verdicts.get(metric)
            for r in run.samples
            if r.suite.startswith(suite) and (not source or r.source == source)
        }

    va, vb = rows(a), rows(b)
    keys = [k for k in va if k in vb and va[k] is not None and vb[k] is not None]
    return [va[k] for k in keys], [vb[k] for k in keys]


def plot_charts(report_dir: Path, results: dict[str, Any], headline: list[str]) -> list[Path]:
    """One PNG of the headline metrics vs iteration, and a before/after bar chart."""
    paths = []
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    ckpts = [(r["iteration"], r) for n, r in results.items() if r["kind"] in ("base", "checkpoint")]
    ckpts.sort(key=lambda t: t[0])
    merged = results.get("merged")
    for m in headline:
        suite, metric = m.split("/", 1)
        points = [(it, r["suites"].get(suite, {}).get(metric)) for it, r in ckpts]
        points = [(it, v) for it, v in points if v is not None]
        merged_v = merged["suites"].get(suite, {}).get(metric) if merged else None
        color = None
        if points:
            (line,) = ax.plot(*zip(*points, strict=True), marker="o", label=m)
            color = line.get_color()
        if merged_v is not None:
            # dashed from the last point drawn (base, or the last checkpoint evaluated apart) to merged
            segment = points[-1:] + [(merged["iteration"], merged_v)]
            ax.plot(*zip(*segment, strict=True), linestyle="--", color=color, label=None if points else m)
            ax.plot(
                [merged["iteration"]], [merged_v], marker="*", markersize=12, linestyle="none", color=color
            )
    if merged:
        ax.plot([], [], marker="*", markersize=10, linestyle="none", color="gray", label="merged model")
    ax.set_xlabel("training iteration (base = 0)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("headline metrics vs iteration")
    fig.tight_layout()
    paths.append(report_dir / "eval_curve.png")
    fig.savefig(paths[-1], dpi=100)

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if "base" in results and len(results) > 1:
        after = "merged" if "merged" in results else list(results)[-1]
        labels, bv, av = [], [], []
        for m in headline:
            suite, metric = m.split("/", 1)
            b = results["base"]["suites"].get(suite, {}).get(metric)
            a = results[after]["suites"].get(suite, {}).get(metric)
            if b is not None and a is not None:
                labels.append(m)
                bv.append(b)
                av.append(a)
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], bv, width=0.4, label="base")
        ax.bar([x + 0.2 for x in xs], av, width=0.4, label=after)
        ax.set_xticks(list(xs), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.legend()
        ax.set_title(f"base vs {after}")
    else:
        ax.set_title("before/after: needs the base and a fine-tuned model")
    fig.tight_layout()
    paths.append(report_dir / "eval_before_after.png")
    fig.savefig(paths[-1], dpi=100)
    return paths


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def before_after_table(results: dict[str, Any], samples: dict[str, ModelRun]) -> str:
    """Markdown table: each suite x metric, base vs merged (or last), delta, n, McNemar p, bootstrap CI."""
    if "base" not in results or len(results) < 2:
        return "(no before/after: evaluate the base and at least one fine-tuned model)"
    after = "merged" if "merged" in results else list(results)[-1]
    lines = [f"| suite | metric | n | base | {after} | delta | McNemar p | 95% CI of delta |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for suite, bm in results["base"]["suites"].items():
        am = results[after]["suites"].get(suite, {})
        for m in METRICS:
            b, a = bm.get(m), am.get(m)
            if b is None and a is None:
                continue
            xb, xa = paired(samples, "base", after, suite, m)
            if m == "e2e_success" or not xb:
                p, ci = "-", "-"
            else:
                binary = all(v in (0.0, 1.0) for v in xb + xa)
                p = f"{mcnemar(xb, xa)[2]:.3g}" if binary else "-"
                ci = "[{}, {}]".format(*bootstrap_ci(xb, xa))
            d = None if a is None or b is None else a - b
            n = bm.get(f"{m}_n", "-")
            lines.append(f"| {suite} | {m} | {n} | {_fmt(b)} | {_fmt(a)} | {_fmt(d)} | {p} | {ci} |")
    return "\n".join(lines)


def write_report(path: Path, results: dict[str, Any], samples: dict[str, ModelRun], charts: list[Path],
                 meta: dict[str, Any]) -> str:  # fmt: skip
    """reports/eval.md: setup, the before/after table, per-model summary, charts."""
    parts = ["# Evaluation", ""]
    parts.append(f"Backend: `{meta.get('backend')}`; greedy decoding; max_new_tokens {meta.get('max_new_tokens')}; "
                 "the same byte-identical prompts for every model.")  # fmt: skip
    parts.append(
        "Suites and sample counts: " + ", ".join(f"{s} n={n}" for s, n in meta.get("suite_n", {}).items())
    )
    parts += ["", "## Before / after", "", before_after_table(results, samples), ""]
    parts += ["## Every model", "", "| model | iteration | seconds | tokens/s | mean gen tokens | "
              + " | ".join(meta.get("headline", [])) + " |",
              "|---|---|---|---|---|" + "---|" * len(meta.get("headline", []))]  # fmt: skip
    for name, r in results.items():
        vals = []
        for m in meta.get("headline", []):
            suite, metric = m.split("/", 1)
            vals.append(_fmt(r["suites"].get(suite, {}).get(metric)))
        parts.append(f"| {name} | {r['iteration']} | {r['seconds']:.1f} | {r['tokens_per_s']:.1f} | "
                     f"{r['mean_gen_tokens']:.1f} | " + " | ".join(vals) + " |")  # fmt: skip
    parity = meta.get("gguf_parity") or {}
    if parity:
        parts += ["", "## GGUF parity (llama.cpp against the merged model)", "",
                  "| GGUF | same greedy reply | prompts | largest metric difference |", "|---|---|---|---|"]  # fmt: skip
        for name, p in parity.items():
            parts.append(
                f"| {name} | {_fmt(p['same_reply'])} | {p['n']} | {p['max_abs_metric_delta']:+.3f} |"
            )
    parts += [""] + [f"![{c.stem}]({c.name})" for c in charts] + [""]
    text = "\n".join(parts)
    with atomic_file(path) as fh:
        fh.write(text)
    return text
