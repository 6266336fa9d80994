"""The evaluate stage on the tiny model: xtuner-identical prompts, adapters, outputs, real MLflow."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from helpers import tool_conversation

from agentune import evaluate
from agentune.core.config import ConfigError, validate_section
from agentune.core.errors import StageError
from agentune.evalsets.scenarios import reference_scenarios


@pytest.mark.parametrize("base_fixture", ["tiny_base", "tiny_base_llama3"])
def test_eval_prompt_is_prefix_of_xtuner_training_encoding(base_fixture, request):
    """The eval prompt for each assistant turn is a token-identical prefix of xtuner's own encoding."""
    from transformers import AutoTokenizer
    from xtuner.dataset.map_fns import openai_map_fn, template_map_fn
    from xtuner.dataset.utils import encode_fn
    from xtuner.utils import PROMPT_TEMPLATE

    from agentune.core.artifacts import BaseModelRecord, base_model_path
    from agentune.inference.generation import encode_prompt
    from agentune.protocol.chat_template import xtuner_template
    from agentune.protocol.templates import get_template

    base = request.getfixturevalue(base_fixture)
    tok = AutoTokenizer.from_pretrained(base_model_path(base))
    xt = xtuner_template(get_template(BaseModelRecord.read(base).template))
    conv = tool_conversation(2)["conversation"]
    example = openai_map_fn({"messages": conv})
    example = template_map_fn(
        example, template=PROMPT_TEMPLATE[get_template(BaseModelRecord.read(base).template).xtuner]
    )
    train_ids = encode_fn(example, tok, max_length=100_000)["input_ids"]
    for k, msg in enumerate(conv):
        if msg["role"] != "assistant":
            continue
        prompt = encode_prompt(conv[:k], tok, xt)
        assert train_ids[: len(prompt)] == prompt, f"turn {k}: eval prompt differs from training encoding"
        answer = tok.encode(msg["content"] + xt["SUFFIX"], add_special_tokens=False)
        assert train_ids[len(prompt) : len(prompt) + len(answer)] == answer
    # the text too: byte-identical
    assert tok.decode(train_ids).startswith(tok.decode(encode_prompt(conv[:2], tok, xt)))


def test_config_rejects_unknown_suite_and_metric():
    with pytest.raises(ConfigError, match="evaluate.suites"):
        validate_section(evaluate.Config, "evaluate", {"suites": ["heldout", "mmlu"]})
    with pytest.raises(ConfigError, match="heldout/accuracy"):
        validate_section(evaluate.Config, "evaluate", {"headline": ["heldout/accuracy"]})
    with pytest.raises(ConfigError, match="champion_metric"):
        validate_section(evaluate.Config, "evaluate", {"mlflow": {"champion_metric": "bogus"}})


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights, saved as PEFT safetensors like `export` writes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    peft = get_peft_model(model, lora)
    peft.save_pretrained(out, safe_serialization=True)
    (out / "agentune_adapter.json").write_text(json.dumps({"iteration": seed}))
    return out


@pytest.fixture(scope="module")
def workspace(tiny_base, tmp_path_factory):
    """A repo-like folder: held-out data, two adapters (iter_3, iter_6), merged = iter_6 merged."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("evalws")
    (root / "data/eval").mkdir(parents=True)
    rows = [{**tool_conversation(i), "source": "agent-flan" if i < 2 else "own"} for i in range(4)]
    (root / "data/eval/heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for it in (3, 6):
        make_adapter(tiny_base, root / f"models/adapters/iter_{it}", it)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_base), root / "models/adapters/iter_6"
    )
    merged = root / "models/merged"
    model.merge_and_unload().save_pretrained(merged, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(merged)
    (merged / "agentune_merged.json").write_text(json.dumps({"iteration": 6}))
    (root / "metrics").mkdir()
    (root / "metrics/train_loss.tsv").write_text("step\tloss\tlr\n1\t2.5\t1e-4\n2\t2.0\t1e-4\n3\t1.5\t1e-4\n")
    counts = {
        "records": 40,
        "kept": 40,
        "rejected": 0,
        "heldout": 2,
        "train": 38,
        "kinds": {"calls": 30, "no_call": 10},
    }
    (root / "metrics/data.json").write_text(json.dumps({"sources": {"own": counts}}))
    return root


def stage_config(root: Path, base: Path, **over) -> evaluate.Config:
    data = {
        "base_model": str(base),
        "adapters": str(root / "models/adapters"),
        "merged": str(root / "models/merged"),
        "heldout": str(root / "data/eval/heldout.jsonl"),
        "heldout_n": 6,
        "max_new_tokens": 12,
        "checkpoint_suites": ["heldout", "scenarios", "bfcl"],  # every suite on every checkpoint
        "bfcl": {"simple_python_n": 3, "irrelevance_n": 2, "cache_dir": str(root.parent / "bfcl_cache")},
        "mlflow": {
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "experiment": "agentune-test",
            "data_metrics": str(root / "metrics/data.json"),
        },
        **over,
    }
    return validate_section(evaluate.Config, "evaluate", data)


@pytest.fixture(scope="module")
def evaluated(workspace, tiny_base):
    import os

    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        evaluate.run(stage_config(workspace, tiny_base))
    finally:
        os.chdir(cwd)
    return workspace


def test_stage_writes_metrics_report_and_samples(evaluated):
    doc = json.loads((evaluated / "metrics/eval.json").read_text())
    assert list(doc["models"]) == ["base", "iter_3", "iter_6", "merged"]
    assert [doc["models"][m]["iteration"] for m in doc["models"]] == [0, 3, 6, 6]
    base = doc["models"]["base"]
    assert set(base) >= {"heldout", "scenarios", "bfcl_simple_python", "bfcl_irrelevance", "tokens_per_s"}
    assert (
        base["heldout"]["n"] == 8  # 4 turns of each source's 2 records (heldout_n is per source)
        and base["heldout:agent-flan"]["n"] == base["heldout:own"]["n"] == 4
        and base["bfcl_simple_python"]["n"] == 3
        and base["bfcl_irrelevance"]["n"] == 2
    )
    assert base["scenarios"]["e2e_success_n"] == 6
    for metric in ("format_valid", "tool_name_acc", "args_json_valid", "args_em", "call_em", "stopped"):
        assert 0.0 <= base["heldout"][metric] <= 1.0
    assert "heldout" in doc["delta_merged_minus_base"]
    curve = (evaluated / "metrics/eval_curve.tsv").read_text().splitlines()
    assert curve[0].startswith("iteration\tmodel\theldout/format_valid") and len(curve) == 5
    report = (evaluated / "reports/eval.md").read_text()
    assert "| suite | metric | n | base | merged |" in report and "| heldout:own | call_em | 2 |" in report
    assert (evaluated / "reports/eval_curve.png").stat().st_size > 0
    assert (evaluated / "reports/eval_before_after.png").stat().st_size > 0

    samples = [json.loads(x) for x in (evaluated / "reports/eval_samples.jsonl").read_text().splitlines()]
    by_model: dict[str, dict] = {}
    cases = [s for s in samples if s.get("case")]
    assert {c["id"] for c in cases if c["model"] == "merged"} == {sc.id for sc in reference_scenarios()}
    for s in samples:
        if s.get("case"):
            continue
        by_model.setdefault(s["model"], {})[(s["suite"], s["id"], s["step"])] = s["output"]
        assert {"id", "output", "parsed", "verdicts", "expected"} <= set(s)
    # adapters really switch: the adapters change the output, and the merged model (iter_6 merged)
    # answers exactly as the iter_6 adapter does on the single-turn prompts
    single = [k for k in by_model["base"] if k[0] != "scenarios"]
    assert any(by_model["base"][k] != by_model["iter_3"][k] for k in single)
    assert any(by_model["iter_3"][k] != by_model["iter_6"][k] for k in single)
    same = sum(by_model["iter_6"][k] == by_model["merged"][k] for k in single)
    assert same >= len(single) - 1


def test_stage_logs_to_mlflow_with_lineage_registry_and_champion(evaluated):
    import mlflow
    from mlflow import MlflowClient

    info = json.loads((evaluated / "reports/mlflow_run.json").read_text())
    assert info["status"] == "logged"
    mlflow.set_tracking_uri(f"sqlite:///{evaluated / 'mlflow.db'}")
    client = MlflowClient()
    parent = client.get_run(info["parent_run_id"])
    assert "git_commit" in parent.data.tags
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "train_loss")] == [1, 2, 3]
    assert any(k.startswith("delta/heldout/") for k in parent.data.metrics)
    assert parent.data.metrics["data/own/train"] == 38 and parent.data.metrics["data/own/kind/no_call"] == 10
    exp_id = parent.info.experiment_id
    children = mlflow.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(children["tags.model"]) == ["base", "iter_3", "iter_6", "merged"]
    iter6 = info["child_run_ids"]["iter_6"]
    hist = client.get_metric_history(iter6, "heldout/format_valid")
    assert [m.step for m in hist] == [6]
    arts = [a.path for a in client.list_artifacts(iter6)]
    assert "samples_iter_6.json" in arts
    table = mlflow.load_table("samples_iter_6.json", run_ids=[iter6])
    assert len(table) > 0 and {"output", "call_em", "format_valid"} <= set(table.columns)
    assert {"eval.json", "eval.md", "eval_curve.png"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }

    mv = client.get_model_version_by_alias("agentune-merged-checkpoints", "champion")
    assert mv.run_id in (info["child_run_ids"]["iter_3"], info["child_run_ids"]["iter_6"])
    assert mv.source.endswith("models/adapters/iter_" + mv.tags["iteration"])
    merged = client.get_model_version_by_alias("agentune-merged", "latest_merged")
    assert merged.source.endswith("models/merged") and merged.run_id == info["child_run_ids"]["merged"]


def test_each_set_of_weights_is_evaluated_once(workspace, tiny_base, tmp_path):
    """The adapter the merged model was merged from is not run again: merged stands for it in the
    results, the curve and the checkpoint registry (export's tests prove merged == base + adapter)."""
    import os
    import shutil

    import mlflow
    from mlflow import MlflowClient

    root = tmp_path / "ws"
    shutil.copytree(
        workspace,
        root,
        ignore=shutil.ignore_patterns("mlflow.db", "mlruns", "reports", "eval.json", "eval_curve.tsv"),
    )
    (root / "models/merged/agentune_merged.json").write_text(
        json.dumps({"iteration": 6, "checkpoint": "iter_6"})
    )
    cfg = stage_config(root, tiny_base, models=["checkpoints", "merged"], suites=["heldout"])
    assert [(m.name, m.stands_for) for m in evaluate.discover_models(cfg)] == [
        ("iter_3", None),
        ("merged", root / "models/adapters/iter_6"),
    ]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        evaluate.run(cfg)
    finally:
        os.chdir(cwd)
    doc = json.loads((root / "metrics/eval.json").read_text())
    assert list(doc["models"]) == ["iter_3", "merged"] and doc["models"]["merged"]["iteration"] == 6
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    versions = MlflowClient().search_model_versions("name = 'agentune-merged-checkpoints'")
    info = json.loads((root / "reports/mlflow_run.json").read_text())
    by_iter = {v.tags["iteration"]: v for v in versions}
    assert by_iter["6"].source.endswith("models/adapters/iter_6")
    assert by_iter["6"].run_id == info["child_run_ids"]["merged"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mlflow_keeps_metrics(workspace, tiny_base, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{_free_port()}"
    over = {"models": ["base"], "suites": ["scenarios"], "max_new_tokens": 4, "metrics_out": "m/eval.json",
            "mlflow": {"tracking_uri": uri}}  # fmt: skip
    evaluate.run(stage_config(workspace, tiny_base, **over))  # not required: warns, succeeds
    assert json.loads((tmp_path / "m/eval.json").read_text())["models"]["base"]["scenarios"]["n"] > 0
    assert json.loads((tmp_path / "reports/mlflow_run.json").read_text())["status"] == "unreachable"
    (tmp_path / "m/eval.json").unlink()
    over["mlflow"] = {"tracking_uri": uri, "required": True}
    with pytest.raises(StageError, match=rf"{uri}.*unreachable(.|\n)*m/eval.json .*intact"):
        evaluate.run(stage_config(workspace, tiny_base, **over))
    assert (tmp_path / "m/eval.json").is_file()


def test_parse_agrees_with_lagent_on_every_stored_output(evaluated):
    """lagent's own `ReActProtocol.parse` (from the pinned wheel) reads every output of the tiny model's
    evaluation as our parser does."""
    from helpers.lagent import assert_parse_agrees

    lines = [json.loads(x) for x in (evaluated / "reports/eval_samples.jsonl").read_text().splitlines()]
    outputs = [rec["output"] for rec in lines if not rec.get("case")]
    assert len(outputs) > 50
    for text in outputs:
        assert_parse_agrees(text)
