"""Tool-calling conversations in the formats people have, written from each format's documentation, and
a runner of `raw_data` + `convert` on them in a temp folder (tests/convert/test_sources.py, test_leak_check.py,
test_dvc_pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agentune.cli import main

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}

#: OpenAI's chat fine-tuning format with tools, as the guide's example writes it (formats.md section 1:
#: developers.openai.com/api/docs/guides/fine-tuning-best-practices, learn.microsoft.com/en-us/azure/
#: ai-services/openai/how-to/fine-tuning-functions): arguments as a JSON string, a tool message answering
#: the call by id, `weight` on assistant messages, `parallel_tool_calls`.
OPENAI_DOC_EXAMPLE = {
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}], "weight": 1},
        {"role": "tool", "tool_call_id": "c1", "content": "21"},
        {"role": "assistant", "content": "21 C"},
    ],
    "tools": [WEATHER],
    "parallel_tool_calls": False,
}  # fmt: skip

#: Two calls in one assistant message, answered in the other order, an earlier turn kept as context
#: (`weight: 0`) and a system prompt (OpenAI's parallel function calling, same guides).
OPENAI_PARALLEL = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?", "weight": 0},
        {"role": "user", "content": "Weather in Paris and in Rome, in f?"},
        {"role": "assistant", "content": "I will look both up.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"f\"}"}},
            {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\", \"unit\": \"f\"}"}}]},
        {"role": "tool", "tool_call_id": "b", "content": "75"},
        {"role": "tool", "tool_call_id": "a", "content": "70"},
        {"role": "assistant", "content": "Paris 70 F, Rome 75 F."},
    ],
    "tools": [WEATHER],
}  # fmt: skip

#: LLaMA-Factory's ShareGPT with tools, the shape of its data/glaive_toolcall_en_demo.json (data/README.md:
#: `tools` a JSON string, function_call / observation turns); the second record has parallel calls (a JSON
#: list of calls, its observation a JSON list of results) and a system turn.
SHAREGPT_DOC_EXAMPLE = {
    "conversations": [
        {"from": "human", "value": "I need a recipe with rice and chicken."},
        {"from": "function_call", "value": "{\"name\": \"search_recipes\", \"arguments\": {\"ingredients\": [\"rice\", \"chicken\"]}}"},
        {"from": "observation", "value": "{\"recipes\": [\"Chicken fried rice\"]}"},
        {"from": "gpt", "value": "Try chicken fried rice."},
    ],
    "tools": json.dumps([{"name": "search_recipes", "description": "Search recipes by ingredients.",
                          "parameters": {"type": "object", "properties": {"ingredients": {"type": "array",
                          "items": {"type": "string"}, "description": "The ingredients"}}, "required": ["ingredients"]}}]),
}  # fmt: skip
SHAREGPT_PARALLEL = {
    "conversations": [
        {"from": "system", "value": "You plan meals."},
        {"from": "human", "value": "Recipes with rice, and with eggs?"},
        {"from": "function_call", "value": "[{\"name\": \"search_recipes\", \"arguments\": {\"ingredients\": [\"rice\"]}}, {\"name\": \"search_recipes\", \"arguments\": {\"ingredients\": [\"eggs\"]}}]"},
        {"from": "observation", "value": "[\"Rice pudding\", \"Omelette\"]"},
        {"from": "gpt", "value": "Rice pudding, and an omelette."},
    ],
    "tools": SHAREGPT_DOC_EXAMPLE["tools"],
}  # fmt: skip


def write_params(tmp: Path, sources: list[dict], **convert_cfg) -> Path:
    params = {
        "raw_data": {"out": "data/raw", "sources": sources, "sample": {"n_records": 60}},
        "convert": {
            "raw_dir": "data/raw",
            "out": "out/converted",
            "heldout_out": "out/heldout.jsonl",
            "metrics_out": "out/data.json",
            "token_stats_records": 0,
            "leak_check": {"fixed_suites": ["scenarios"]},
            **convert_cfg,
        },
    }
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_stages(tmp: Path, monkeypatch, sources: list[dict], files: dict[str, list], **convert_cfg) -> int:
    monkeypatch.chdir(tmp)
    (tmp / "data/sources").mkdir(parents=True, exist_ok=True)
    for name, records in files.items():
        (tmp / "data/sources" / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    params = str(write_params(tmp, sources, **convert_cfg))
    return main(["raw_data", "--params", params]) or main(["convert", "--params", params])


def own(kind: str = "openai", name: str = "own", file: str = "own.jsonl", **extra) -> dict:
    return {"name": name, "kind": kind, "path": f"data/sources/{file}", **extra}


def weather_record(i: int) -> dict:
    rec = json.loads(json.dumps(OPENAI_DOC_EXAMPLE))
    rec["messages"][0]["content"] = f"Weather in city {i}?"
    rec["messages"][1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"city": f"city {i}"})
    return rec
