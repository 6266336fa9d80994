"""Stage convert: the converted dataset, the held-out slice, metrics, fingerprint and every bad input."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import pytest
import yaml

from agentune import convert, raw_data
from agentune.cli import main
from agentune.core.artifacts import ConvertRecord

GOOD = "toolbench_react_10p.jsonl"


def good_record(i: int) -> dict:
    from helpers import tool_conversation

    return tool_conversation(i)


def write_params(tmp: Path, base: Path | None = None, **convert_cfg) -> Path:
    cfg = {
        "raw_dir": "raw",
        "base_model": str(base or "no-base"),
        "out": "out/converted",
        "heldout_out": "out/eval/heldout.jsonl",
        "metrics_out": "out/metrics/data.json",
        "token_stats_records": 0 if base is None else 500,
        "leak_check": {"fixed_suites": ["scenarios"]},  # BFCL's check: tests/convert/test_leak_check.py
        **convert_cfg,
    }
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump({"convert": cfg}))
    return path


def run_convert(tmp: Path, monkeypatch, base: Path | None = None, **cfg) -> int:
    monkeypatch.chdir(tmp)
    return main(["convert", "--params", str(write_params(tmp, base, **cfg))])


def write_raw(tmp: Path, files: dict[str, list[str] | bytes]) -> Path:
    raw = tmp / "raw"
    raw.mkdir(exist_ok=True)
    for name, lines in files.items():
        data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
        (raw / name).write_bytes(data)
    return raw


def good_lines(n: int, start: int = 0) -> list[str]:
    return [json.dumps(good_record(i)) for i in range(start, start + n)]


def test_converts_the_sample_with_explicit_loss_and_a_heldout_slice(tmp_path, monkeypatch, tiny_base):
    from datasets import load_from_disk

    raw_data.run(raw_data.Config(out=tmp_path / "raw", sample={"n_records": 300, "seed": 1}))
    extra = good_record(999)
    extra["id"] = "extra-loss"
    extra["conversation"][2].pop("loss")  # missing loss on an assistant turn -> trained
    extra["conversation"][4]["loss"] = False  # explicit false -> kept false
    extra["conversation"][1]["loss"] = True  # user turns are never trained
    with open(tmp_path / "raw/agent-flan" / GOOD, "a") as fh:
        fh.write(json.dumps(extra) + "\n")

    assert run_convert(tmp_path, monkeypatch, tiny_base, heldout_fraction=0.2) == 0
    out = tmp_path / "out"
    ds = load_from_disk(str(out / "converted"))
    assert ds.column_names == ["id", "messages"]
    for row in ds:
        for m in row["messages"]:
            assert m["loss"] is (m["role"] == "assistant") or (
                row["id"] == "agent-flan/extra-loss" and m["loss"] is False
            )
    heldout = [json.loads(line) for line in (out / "eval/heldout.jsonl").read_text().splitlines()]
    assert all(i.startswith("agent-flan/") for i in ds["id"])
    train_ids, held_ids = {i.removeprefix("agent-flan/") for i in ds["id"]}, {r["id"] for r in heldout}
    assert not train_ids & held_ids and len(train_ids) + len(held_ids) == 301
    assert held_ids == {i for i in train_ids | held_ids if convert.heldout_bucket(i) < 200}
    assert 30 < len(held_ids) < 100
    assert set(heldout[0]) == {"id", "source", "conversation"} and heldout[0]["source"] == "agent-flan"
    if "extra-loss" in train_ids:
        row = ds[ds["id"].index("agent-flan/extra-loss")]
        assert [m["loss"] for m in row["messages"]] == [False, False, True, False, False]

    metrics = json.loads((out / "metrics/data.json").read_text())
    assert metrics["records"] == metrics["kept"] == 301 and metrics["rejected"] == 0
    assert metrics["train"] == len(ds) and metrics["heldout"] == len(heldout)
    assert sum(f["records"] for f in metrics["files"].values()) == 301 and len(metrics["files"]) == 7
    source = metrics["sources"]["agent-flan"]
    assert (source["records"], source["train"], source["heldout"]) == (301, len(ds), len(heldout))
    assert sum(source["kinds"].values()) == 301 and set(source["kinds"]) == {"calls", "no_call", "chat"}
    assert metrics["leak_check"]["scenarios"]["hits"] == 0
    assert (
        metrics["roles"]["system"] == 301
        and metrics["roles"]["assistant_trained"] < metrics["roles"]["assistant"]
    )
    tokens = metrics["tokens"]
    assert tokens["n"] == len(ds) and 0 < tokens["p50"] <= tokens["p90"] <= tokens["p99"] <= tokens["max"]
    prov = json.loads((out / "converted" / ConvertRecord.FILE).read_text())
    assert prov["config"]["heldout_fraction"] == 0.2 and prov["fingerprint"] == metrics["fingerprint"]
    assert not (out / "converted" / convert.REJECTS).exists()
    assert sorted(p.name for p in out.iterdir()) == ["converted", "eval", "metrics"]


def test_fingerprint_and_bytes_do_not_depend_on_listing_order(tmp_path, monkeypatch):
    files = {name: good_lines(3, 10 * k) for k, name in enumerate(raw_data.AGENT_FLAN_FILES)}
    results = []
    for order in (1, -1):
        work = tmp_path / f"w{order}"
        work.mkdir()
        write_raw(work, dict(list(files.items())[::order]))
        original = pathlib.Path.glob

        def listing(self, pattern, *a, _order=order, _orig=original, **kw):
            return iter(list(_orig(self, pattern, *a, **kw))[::_order])

        monkeypatch.setattr(pathlib.Path, "glob", listing)
        assert run_convert(work, monkeypatch, heldout_fraction=0.3) == 0
        monkeypatch.setattr(pathlib.Path, "glob", original)
        m = json.loads((work / "out/metrics/data.json").read_text())
        arrow = (work / "out/converted/data-00000-of-00001.arrow").read_bytes()
        results.append((m["fingerprint"], m["heldout_fingerprint"], arrow))
    assert results[0] == results[1]
    # and a change in content changes it
    (tmp_path / "w1/raw" / GOOD).write_text("\n".join(good_lines(3, 500)) + "\n")
    assert run_convert(tmp_path / "w1", monkeypatch, heldout_fraction=0.3) == 0
    assert json.loads((tmp_path / "w1/out/metrics/data.json").read_text())["fingerprint"] != results[0][0]


def leftovers(out: Path) -> list[Path]:
    """Files, temp dirs or the dataset dir a failed run left (empty parent dirs may stay)."""
    return [p for p in out.rglob("*") if p.is_file() or p.name == "converted" or "tmp" in p.name]


def _rec(**over) -> str:
    rec = good_record(7)
    rec.update(over)
    return json.dumps(rec)


def _conv(mutate) -> str:
    rec = good_record(7)
    mutate(rec["conversation"])
    return json.dumps(rec)


BIG = json.dumps({"id": "huge", "conversation": [{"role": "user", "content": "x" * (10 * 1024 * 1024)}]})

# case -> (lines of the bad file (bad record on line 2), reject kind, reason text, id in the message)
BAD = {
    "invalid_json": ('{"id": "broken", "conversation": [', "invalid_json", "invalid JSON", "broken"),
    "missing_conversation": (
        json.dumps({"id": "noconv", "messages": []}),
        "missing_conversation",
        "missing field 'conversation'",
        "noconv",
    ),
    "unknown_role": (
        _conv(lambda c: c[1].update(role="tool")),
        "unknown_role",
        "unknown role 'tool'",
        "tiny-7",
    ),
    "empty_content": (_conv(lambda c: c[2].update(content="  ")), "empty_content", "empty content", "tiny-7"),
    "non_boolean_loss": (
        _conv(lambda c: c[2].update(loss="yes")),
        "bad_loss",
        "'loss' must be true or false",
        "tiny-7",
    ),
    "no_assistant_turn": (
        _conv(lambda c: c.__setitem__(slice(2, None), [])),
        "no_assistant_turn",
        "no assistant turn",
        "tiny-7",
    ),
    "duplicate_id": (json.dumps(good_record(0)), "duplicate_id", "duplicate id", "tiny-0"),
    "ten_mb_line": (BIG, "line_too_long", "longer than convert.max_line_bytes", "huge"),
    "missing_id": (_rec(id=""), "missing_id", "missing or empty string field 'id'", None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_record_fails_with_file_line_id_and_reason_and_no_output(case, tmp_path, monkeypatch, capsys):
    bad, _, reason, rid = BAD[case]
    write_raw(tmp_path, {GOOD: [json.dumps(good_record(0)), bad, *good_lines(2, 1)]})
    assert run_convert(tmp_path, monkeypatch) == 1
    err = capsys.readouterr().err
    assert f"raw/{GOOD}:2: " in err and reason in err, err
    assert (f"record {rid!r}" in err) if rid else ("record (no id found)" in err)
    assert "on_error: skip" in err and "Traceback" not in err
    assert not leftovers(tmp_path / "out")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_record_is_skipped_into_rejects_with_counts(case, tmp_path, monkeypatch):
    from datasets import load_from_disk

    bad, kind, reason, rid = BAD[case]
    write_raw(tmp_path, {GOOD: [json.dumps(good_record(0)), bad, *good_lines(2, 1)]})
    assert run_convert(tmp_path, monkeypatch, on_error="skip", heldout_fraction=0.0) == 0
    out = tmp_path / "out/converted"
    rejects = [json.loads(line) for line in (out / convert.REJECTS).read_text().splitlines()]
    assert len(rejects) == 1
    r = rejects[0]
    assert (r["file"], r["line"], r["id"], r["kind"]) == (f"raw/{GOOD}", 2, rid, kind) and reason in r[
        "reason"
    ]
    assert len(r["excerpt"]) <= convert.EXCERPT_CHARS and r["bytes"] == len(bad) + 1
    metrics = json.loads((tmp_path / "out/metrics/data.json").read_text())
    assert (metrics["records"], metrics["kept"], metrics["rejected"]) == (4, 3, 1)
    assert metrics["rejects_by_reason"] == {kind: 1} and metrics["files"][f"raw/{GOOD}"]["rejected"] == 1
    assert metrics["sources"]["raw"]["rejected"] == 1
    assert load_from_disk(str(out))["id"] == ["raw/tiny-0", "raw/tiny-1", "raw/tiny-2"]


def test_empty_file(tmp_path, monkeypatch, capsys):
    write_raw(tmp_path, {GOOD: good_lines(3), "toolbench_negative.jsonl": b""})
    assert run_convert(tmp_path, monkeypatch) == 1
    err = capsys.readouterr().err
    assert "raw/toolbench_negative.jsonl: empty file: no records" in err
    assert not leftovers(tmp_path / "out")

    assert run_convert(tmp_path, monkeypatch, on_error="skip") == 0
    metrics = json.loads((tmp_path / "out/metrics/data.json").read_text())
    assert metrics["rejects_by_reason"] == {"empty_file": 1} and metrics["kept"] == 3
    assert metrics["files"]["raw/toolbench_negative.jsonl"] == {
        "records": 0,
        "kept": 0,
        "rejected": 1,
        "heldout": 0,
        "train": 0,
    }


def test_failed_run_leaves_previous_output_untouched(tmp_path, monkeypatch):
    write_raw(tmp_path, {GOOD: good_lines(4)})
    assert run_convert(tmp_path, monkeypatch) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    write_raw(tmp_path, {GOOD: [*good_lines(2), BAD["unknown_role"][0]]})
    assert run_convert(tmp_path, monkeypatch) == 1
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in (tmp_path / "out").rglob(".*tmp*")]


def test_missing_inputs_are_clear_errors(tmp_path, monkeypatch, capsys):
    assert run_convert(tmp_path, monkeypatch) == 1
    assert "not a directory; run `agentune raw_data` first" in capsys.readouterr().err
    (tmp_path / "raw").mkdir()
    assert run_convert(tmp_path, monkeypatch) == 1
    assert "no .jsonl files" in capsys.readouterr().err
    write_raw(tmp_path, {GOOD: good_lines(2)})
    assert run_convert(tmp_path, monkeypatch, base=tmp_path / "nobase") == 1
    assert "agentune_base.json: missing" in capsys.readouterr().err


def test_xtuner_tokenizes_every_assistant_turn_as_trained(tmp_path, monkeypatch, tiny_base):
    """xtuner's own pipeline (openai_map_fn + the model's template) on the converted output."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer
    from xtuner.dataset import process_hf_dataset
    from xtuner.dataset.map_fns import openai_map_fn, template_map_fn_factory
    from xtuner.utils import PROMPT_TEMPLATE

    from agentune.core.artifacts import BaseModelRecord, base_model_path
    from agentune.protocol.templates import get_template

    raw_data.run(raw_data.Config(out=tmp_path / "raw", sample={"n_records": 70, "seed": 5}))
    assert run_convert(tmp_path, monkeypatch, tiny_base, heldout_fraction=0.0) == 0
    converted = load_from_disk(str(tmp_path / "out/converted"))
    tok = AutoTokenizer.from_pretrained(str(base_model_path(tiny_base)))
    template = get_template(BaseModelRecord.read(tiny_base).template)
    ds = process_hf_dataset(
        dataset=load_from_disk(str(tmp_path / "out/converted")),
        tokenizer=tok,
        max_length=16384,
        dataset_map_fn=openai_map_fn,
        template_map_fn=template_map_fn_factory(template=PROMPT_TEMPLATE[template.xtuner]),
        remove_unused_columns=True,
        pack_to_max_length=False,
        shuffle_before_pack=False,
        map_num_proc=1,
    )
    assert len(ds) == len(converted) == 70
    by_text = {}
    for row in converted:
        by_text[row["messages"][-1]["content"] + template.eos] = row
    for sample in ds:
        labels = sample["labels"]
        spans, cur = [], []
        for label in labels:
            if label != -100:
                cur.append(label)
            elif cur:
                spans.append(cur)
                cur = []
        if cur:
            spans.append(cur)
        trained = [tok.decode(s) for s in spans]
        row = by_text[trained[-1]]  # the last trained span is the last assistant turn + eos
        assistant = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert len(spans) == len(assistant) >= 1
        assert trained == [a + template.eos for a in assistant]


def test_token_counts_match_the_tokenizers_own_chat_template(tiny_base):
    from helpers import tool_conversation
    from transformers import AutoTokenizer

    samples = [tool_conversation(i)["conversation"] for i in range(5)]
    tok = AutoTokenizer.from_pretrained(str(tiny_base))
    expected = sorted(
        len(tok.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in s]))
        for s in samples
    )
    stats = convert.token_lengths(tiny_base, samples)
    assert stats["method"] == "chat template"
    assert (stats["n"], stats["max"], stats["p50"]) == (5, expected[-1], expected[2])


def test_tool_result_convention_is_read_from_the_data_and_mixed_records_are_named(
    tmp_path, monkeypatch, caplog
):
    """Data that sends tool results as lagent does (a system turn `Response:...`) is recorded so; a record
    mixing conventions is reported with file:line; a conversation without the protocol counts as chat."""

    def lagent_style(i: int) -> dict:
        rec = good_record(i)
        rec["conversation"][3] = {"role": "system", "content": "Response:" + str(7 + 3 * i), "loss": False}
        return rec

    mixed = good_record(50)
    mixed["id"] = "mixed"
    mixed["conversation"][4:4] = [
        {"role": "assistant", "content": mixed["conversation"][2]["content"], "loss": True},
        {"role": "system", "content": "Response:7", "loss": False},
    ]
    chat = {"id": "chat-1", "conversation": [{"role": "system", "content": "You are helpful."},
                                              {"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": "Hello!"}]}  # fmt: skip
    lines = [json.dumps(lagent_style(i)) for i in range(5)] + [json.dumps(mixed), json.dumps(chat)]
    write_raw(tmp_path, {"a.jsonl": lines})
    assert run_convert(tmp_path, monkeypatch) == 0
    metrics = json.loads((tmp_path / "out/metrics/data.json").read_text())
    assert metrics["tool_result"] == {"role": "system", "prefix": "Response:"}
    assert metrics["conversations"] == {"tool_protocol": 6, "chat": 1}
    assert metrics["mixed_tool_result_records"] == 1
    assert metrics["mixed_tool_result_examples"] == [
        f"{Path('raw') / 'a.jsonl'}:6: record 'mixed': user 'Response: ', system 'Response:'"
    ]
    assert "raw/a.jsonl:6: record 'mixed' sends tool results in more than one way" in caplog.text
    record = json.loads((tmp_path / "out/converted" / ConvertRecord.FILE).read_text())
    assert record["tool_result"] == metrics["tool_result"]  # travels with the dataset to train and export
