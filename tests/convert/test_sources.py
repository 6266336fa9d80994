"""Training sources in the formats people have (OpenAI fine-tuning JSONL, LLaMA-Factory ShareGPT), mixed
with the sample: rendered into the protocol as `agentune serve` renders requests, bad records named by
file:line, record id, field and fix, weights and caps, and held-out records per source."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers.sources import (
    OPENAI_DOC_EXAMPLE,
    OPENAI_PARALLEL,
    SHAREGPT_DOC_EXAMPLE,
    SHAREGPT_PARALLEL,
    WEATHER,
    own,
    run_stages,
    weather_record,
)

from agentune.convert.sources import read_openai, read_sharegpt
from agentune.protocol import react


def test_openai_record_becomes_the_protocol():
    rid, msgs, extra = read_openai(OPENAI_DOC_EXAMPLE)
    assert len(rid) == 16 and extra == {"parallel_call_turns": 0}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == react.render_system([WEATHER["function"]])
    assert msgs[2]["content"] == react.format_call("", "get_weather", {"city": "Paris"})
    assert msgs[3]["content"] == "Response: 21"
    assert msgs[4]["content"] == react.format_final("", "21 C")
    assert [m["loss"] for m in msgs] == [False, False, True, False, True]


def test_openai_parallel_calls_follow_the_results_and_weight_zero_is_context():
    _, msgs, extra = read_openai(OPENAI_PARALLEL)
    assert extra == {"parallel_call_turns": 1}
    assert msgs[0]["content"] == react.render_system([WEATHER["function"]]) + "\nBe brief."
    turns = [(m["role"], m["content"], m["loss"]) for m in msgs[1:]]
    assert turns == [
        ("user", "Hi", False),
        ("assistant", react.format_final("", "Hello! How can I help?"), False),
        ("user", "Weather in Paris and in Rome, in f?", False),
        ("assistant", react.format_call("", "get_weather", {"city": "Rome", "unit": "f"}), True),
        ("user", "Response: 75", False),
        (
            "assistant",
            react.format_call("I will look both up.", "get_weather", {"city": "Paris", "unit": "f"}),
            True,
        ),
        ("user", "Response: 70", False),
        ("assistant", react.format_final("", "Paris 70 F, Rome 75 F."), True),
    ]


def test_sharegpt_records_become_the_protocol():
    tags: dict[str, str] = {}
    _, msgs, _ = read_sharegpt(SHAREGPT_DOC_EXAMPLE, tags)
    spec = json.loads(SHAREGPT_DOC_EXAMPLE["tools"])[0]
    assert msgs[0]["content"] == react.render_system([spec])
    assert msgs[2]["content"] == react.format_call("", "search_recipes", {"ingredients": ["rice", "chicken"]})
    assert msgs[3]["content"] == 'Response: {"recipes": ["Chicken fried rice"]}'
    _, msgs, extra = read_sharegpt(SHAREGPT_PARALLEL, tags)
    assert extra == {"parallel_call_turns": 1} and msgs[0]["content"].endswith("\nYou plan meals.")
    assert [m["content"] for m in msgs[2:6]] == [
        react.format_call("", "search_recipes", {"ingredients": ["rice"]}), "Response: Rice pudding",
        react.format_call("", "search_recipes", {"ingredients": ["eggs"]}), "Response: Omelette",
    ]  # fmt: skip
    # LLaMA-Factory lets a dataset name its own tags (dataset_info.json `tags`)
    renamed = {"conversations": [{"role": "user", "content": t["value"]} if t["from"] == "human"
               else {"role": t["from"], "content": t["value"]} for t in SHAREGPT_DOC_EXAMPLE["conversations"]],
               "tools": SHAREGPT_DOC_EXAMPLE["tools"]}  # fmt: skip
    _, again, _ = read_sharegpt(renamed, {"role_tag": "role", "content_tag": "content", "user_tag": "user"})
    assert again == read_sharegpt(SHAREGPT_DOC_EXAMPLE, tags)[1]


def test_mixed_with_the_sample_weighted_capped_and_held_out_per_source(tmp_path, monkeypatch):
    from datasets import load_from_disk

    records = [weather_record(i) for i in range(40)]
    sources = [{"name": "agent-flan", "kind": "agent-flan", "max_records": 20}, own(weight=2.5)]
    assert run_stages(tmp_path, monkeypatch, sources, {"own.jsonl": records}, heldout_fraction=0.2) == 0
    metrics = json.loads((tmp_path / "out/data.json").read_text())
    flan, mine = metrics["sources"]["agent-flan"], metrics["sources"]["own"]
    assert flan["train"] == 20 and flan["train_records"] > 20
    assert mine["kept"] == 40 and mine["kinds"] == {"calls": 40} and 0 < mine["heldout"] < 20
    assert mine["train"] == round(2.5 * mine["train_records"] + 1e-9) or mine["train"] == int(
        2.5 * mine["train_records"]
    )
    assert mine["files_sha256"]["own.jsonl"]
    ids = load_from_disk(str(tmp_path / "out/converted"))["id"]
    assert (
        sum(i.startswith("own/") for i in ids) == mine["train"]
        and len(ids) == metrics["train"] == 20 + mine["train"]
    )
    assert sum(i.startswith("own/") and i.endswith("#3") for i in ids) == round(0.5 * mine["train_records"])
    held = [json.loads(line) for line in (tmp_path / "out/heldout.jsonl").read_text().splitlines()]
    assert {h["source"] for h in held} == {"agent-flan", "own"}
    assert not {f"own/{h['id']}" for h in held} & set(ids)
    assert set(metrics["leak_check"]["heldout"]) == {"agent-flan", "own"}
    first = (tmp_path / "out/converted/data-00000-of-00001.arrow").read_bytes()
    assert run_stages(tmp_path, monkeypatch, sources, {"own.jsonl": records}, heldout_fraction=0.2) == 0
    assert (tmp_path / "out/converted/data-00000-of-00001.arrow").read_bytes() == first  # seeded


def test_an_evaluation_file_is_held_out_whole(tmp_path, monkeypatch):
    sources = [own(heldout_path="data/sources/eval.jsonl")]
    files = {
        "own.jsonl": [weather_record(i) for i in range(10)],
        "eval.jsonl": [weather_record(i) for i in range(50, 53)],
    }
    assert run_stages(tmp_path, monkeypatch, sources, files, heldout_fraction=0.5) == 0
    metrics = json.loads((tmp_path / "out/data.json").read_text())
    assert (metrics["sources"]["own"]["train"], metrics["sources"]["own"]["heldout"]) == (10, 3)
    rates = metrics["leak_check"]["heldout"]["own"]
    assert rates["calls"] == 3 and rates["exact_call_rate"] == 0.0


def test_the_same_conversation_is_the_same_prompt_in_training_and_in_serve(tmp_path, monkeypatch, tiny_base):
    """An OpenAI-format conversation converted for training, tokenised by xtuner's own pipeline, and the
    same conversation (up to its last reply) sent to `agentune serve` over HTTP: equal token for token."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer
    from xtuner.dataset import process_hf_dataset
    from xtuner.dataset.map_fns import openai_map_fn, template_map_fn_factory
    from xtuner.utils import PROMPT_TEMPLATE

    from agentune.core.artifacts import BaseModelRecord, base_model_path
    from agentune.protocol.templates import get_template
    from agentune.serve import build_parser, load
    from agentune.serve.app import serving

    assert (
        run_stages(tmp_path, monkeypatch, [own()], {"own.jsonl": [OPENAI_PARALLEL]}, heldout_fraction=0.0)
        == 0
    )
    tok = AutoTokenizer.from_pretrained(str(base_model_path(tiny_base)))
    template = get_template(BaseModelRecord.read(tiny_base).template)
    (sample,) = process_hf_dataset(
        dataset=load_from_disk(str(tmp_path / "out/converted")), tokenizer=tok, max_length=16384,
        dataset_map_fn=openai_map_fn, template_map_fn=template_map_fn_factory(template=PROMPT_TEMPLATE[template.xtuner]),
        remove_unused_columns=True, pack_to_max_length=False, shuffle_before_pack=False, map_num_proc=1,
    )  # fmt: skip
    labels = sample["labels"]
    last = max(i for i, label in enumerate(labels) if label != -100 and (i == 0 or labels[i - 1] == -100))
    trained_prompt = sample["input_ids"][:last]

    engine, opts = load(
        build_parser().parse_args(["--model", str(tiny_base), "--name", "tiny", "--max-tokens", "1"])
    )
    try:
        with serving(engine, opts) as url:
            body = {"model": "tiny", "messages": OPENAI_PARALLEL["messages"][:-1], "tools": OPENAI_PARALLEL["tools"],
                    "max_tokens": 1, "return_token_ids": True}  # fmt: skip
            resp = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
    finally:
        engine.close()
    assert resp.status_code == 200, resp.text
    served = resp.json()["prompt_token_ids"]
    assert served == trained_prompt, (
        f"\n served {tok.decode(served)[-300:]!r}\n trained {tok.decode(trained_prompt)[-300:]!r}"
    )


def _bad_openai(mutate) -> dict:
    rec = json.loads(json.dumps(OPENAI_DOC_EXAMPLE))
    rec["id"] = "rec-7"
    mutate(rec)
    return rec


def _call(rec: dict) -> dict:
    return rec["messages"][1]["tool_calls"][0]


BAD = {
    # case: (source kind, record, error kind, what the message names)
    "call_to_an_unlisted_tool": ("openai", _bad_openai(lambda r: _call(r)["function"].update(name="get_time")),
                                 "unknown_tool", "messages[1].tool_calls[0].function.name: 'get_time' is not in the record's tools"),
    "arguments_not_an_object": ("openai", _bad_openai(lambda r: _call(r)["function"].update(arguments="[1, 2]")),
                                "bad_arguments", "messages[1].tool_calls[0].function.arguments: arguments must be a JSON object"),
    "arguments_not_json": ("openai", _bad_openai(lambda r: _call(r)["function"].update(arguments="{city: Paris")),
                           "bad_arguments", "write the arguments as a JSON object string"),
    "unmatched_tool_call_id": ("openai", _bad_openai(lambda r: r["messages"][2].update(tool_call_id="c9")),
                               "unmatched_tool_call_id", "messages[2]: a tool message must answer a call of the assistant message before it; tool_call_id 'c9'"),
    "schema_the_protocol_cannot_map": ("openai", _bad_openai(lambda r: r["tools"][0]["function"].update(
        parameters={"type": "object", "properties": {"city": {"$ref": "#/$defs/nowhere"}}})),
        "bad_tool_schema", "tools[0].function: tool 'get_weather': $ref '#/$defs/nowhere' does not resolve"),
    "function_call_without_observation": ("sharegpt", {**SHAREGPT_DOC_EXAMPLE, "id": "rec-7", "conversations":
        [SHAREGPT_DOC_EXAMPLE["conversations"][i] for i in (0, 1, 3)]},
        "call_without_observation", "conversations[2]: the function_call at conversations[1] has no 'observation'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_record_names_file_line_id_field_and_fix(case, tmp_path, monkeypatch, capsys):
    kind, bad, error_kind, named = BAD[case]
    good = OPENAI_DOC_EXAMPLE if kind == "openai" else SHAREGPT_DOC_EXAMPLE
    files = {"own.jsonl": [good, bad]}
    assert run_stages(tmp_path, monkeypatch, [own(kind)], files) == 1
    err = capsys.readouterr().err
    assert "data/sources/own.jsonl:2: record 'rec-7': " in err and named in err, err
    assert "Traceback" not in err and not (tmp_path / "out/converted").exists()

    assert run_stages(tmp_path, monkeypatch, [own(kind)], files, on_error="skip") == 0
    (reject,) = [json.loads(x) for x in (tmp_path / "out/converted/rejects.jsonl").read_text().splitlines()]
    assert (reject["file"], reject["line"], reject["id"], reject["kind"]) == (
        "data/sources/own.jsonl",
        2,
        "rec-7",
        error_kind,
    )
    assert json.loads((tmp_path / "out/data.json").read_text())["sources"]["own"]["rejected"] == 1
