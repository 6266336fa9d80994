"""Two probes behind benchmarks/experiments/2026-11-24-schema-coverage.md (why some fine-tuned replies never stop).

1. How many tool calls in a raw sample fill every parameter of their tool's schema:

       .venv/bin/python benchmarks/call_shape_probe.py fill data/raw/agent-flan

2. The model's next-token distribution at a point of a BFCL reply, e.g. where the JSON should close:

       .venv/bin/python benchmarks/call_shape_probe.py next models/merged simple_python_66 \\
           $'Thought: ...\\nAction: ecology_data.precipitation_stats\\nAction Input: {"location": ...'

   The prompt is rendered exactly as `agentune evaluate` renders it (same system prompt and template).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentune.protocol import react


def fill_share(raw_dir: Path) -> tuple[int, int]:
    """(calls that fill every schema parameter, all parsed calls) over the raw .jsonl files."""
    full = calls = 0
    for path in sorted(raw_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            conv = json.loads(line)["conversation"]
            specs = {s["name"]: s for s in react.tools_from_system(conv[0]["content"]) or []}
            for m in conv:
                reply = react.parse_reply(m["content"]) if m["role"] == "assistant" else None
                if reply and reply.kind == "call" and reply.action in specs and isinstance(reply.args, dict):
                    calls += 1
                    full += set(reply.args) == set(specs[reply.action]["parameters"]["properties"])
    return full, calls


def next_tokens(model_dir: str, sample_id: str, prefix: str, k: int = 5) -> list[tuple[str, float]]:
    """Top-k next tokens (text, probability) after `prefix` as the reply to BFCL sample `sample_id`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentune.core.artifacts import BaseModelRecord
    from agentune.core.config import load_section
    from agentune.evalsets import bfcl as bfcl_data
    from agentune.evaluate import Config
    from agentune.inference.generation import encode_prompt
    from agentune.protocol.chat_template import xtuner_template
    from agentune.protocol.templates import get_template

    cfg = load_section(Config, "evaluate")
    wheel = bfcl_data.fetch_wheel(cfg.bfcl.cache_dir)
    category = sample_id.rsplit("_", 1)[0]
    rec = next(r for r in bfcl_data.load_category(wheel, category, 10**6) if r["id"] == sample_id)
    template = xtuner_template(get_template(BaseModelRecord.read(cfg.base_model).template))
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    messages = [{"role": "system", "content": react.render_system(rec["tools"])}, *rec["messages"]]
    ids = encode_prompt(messages, tok, template) + tok(prefix, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    top = probs.topk(k)
    return [(tok.decode([i]), round(p.item(), 3)) for p, i in zip(top.values, top.indices, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fill", help="share of calls that fill every schema parameter")
    f.add_argument("raw_dir", type=Path)
    n = sub.add_parser("next", help="next-token probabilities after a reply prefix")
    n.add_argument("model_dir")
    n.add_argument("sample_id", help="a BFCL id, e.g. simple_python_66 or irrelevance_90")
    n.add_argument("prefix", help="the reply so far")
    args = ap.parse_args()
    if args.cmd == "fill":
        full, calls = fill_share(args.raw_dir)
        print(f"{full} of {calls} calls fill every schema parameter ({full / max(calls, 1):.0%})")
    else:
        print(next_tokens(args.model_dir, args.sample_id, args.prefix))


if __name__ == "__main__":
    main()
