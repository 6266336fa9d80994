"""Stage export on real xtuner checkpoints of the tiny model: adapters, lean merge, stopping, errors."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentune.core.errors import StageError

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONWARNINGS": "ignore"}


def _split_base(src: Path, out: Path) -> Path:
    """A copy of a single-file base model split into two shards (small norms first) + index."""
    from safetensors.torch import load_file, save_file

    from agentune.core.io import read_json, sha256_tree, write_json

    shutil.copytree(src, out, ignore=shutil.ignore_patterns("model.safetensors"))
    tensors = load_file(str(src / "model.safetensors"))
    first = {k: v for k, v in tensors.items() if "norm" in k}
    second = {k: v for k, v in tensors.items() if k not in first}
    names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    weight_map = {}
    for name, part in zip(names, (first, second), strict=True):
        save_file(part, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    prov = read_json(src / "agentune_base.json")
    prov["weights_sha256"] = sha256_tree(out, "*.safetensors")
    write_json(out / "agentune_base.json", prov)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base) -> dict[str, Path]:
    """A sharded tiny base and a real `agentune train` run on it (2 kept checkpoints, iter_20 and iter_40).

    The data teaches the model to answer `ok` and end the turn, so the merged model has a reason to
    emit <|im_end|>. The checkpoints hold optimizer state too (train's save_optimizer default).
    """
    from datasets import Dataset

    from agentune import train

    root = tmp_path_factory.mktemp("export")
    base = _split_base(tiny_base, root / "base")
    rows = [
        {
            "id": f"ok-{i}",
            "messages": [
                {"role": "user", "content": f"Say ok {i}", "loss": False},
                {"role": "assistant", "content": "ok", "loss": True},
            ],
        }
        for i in range(16)
    ]
    data = root / "converted"
    Dataset.from_list(rows).save_to_disk(str(data))
    work = root / "checkpoints"
    cfg = train.Config(
        base_model=base,
        dataset=data,
        out=work,
        loss_curve=root / "train_loss.tsv",
        lora={"r": 8, "alpha": 16, "dropout": 0.0},
        max_length=64,
        pack_to_max_length=False,
        max_iters=40,
        lr=2e-2,  # 5e-2 overshoots: the tiny model learns `o` -> `k` -> `k` ... and never ends the turn
        warmup_ratio=0.0,
        save_steps=20,
        keep=2,
    )
    train.run(cfg)
    return {"root": root, "base": base, "checkpoints": work, "data": data}


def _cfg(trained: dict[str, Path], out: Path, **kw):
    from agentune import export

    values = dict(
        base_model=trained["base"],
        checkpoints=trained["checkpoints"],
        adapters_out=out / "adapters",
        merged_out=out / "merged",
    )
    values.update(kw)
    return export.Config(**values)


@pytest.fixture(scope="module")
def exported_fp32(trained, tmp_path_factory) -> Path:
    from agentune import export

    out = tmp_path_factory.mktemp("out_fp32")
    export.run(_cfg(trained, out, dtype="float32"))
    return out


def _load_base(trained):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(trained["base"]), torch_dtype="float32").eval()


def test_every_checkpoint_becomes_a_loadable_adapter(trained, exported_fp32):
    import torch
    from peft import PeftModel

    from agentune.core.artifacts import list_checkpoints
    from agentune.core.io import read_json, sha256_file

    train_prov = read_json(trained["checkpoints"] / "agentune_train.json")
    ckpts = list_checkpoints(trained["checkpoints"])
    assert [c.name for c in ckpts] == ["iter_20", "iter_40"]
    assert read_json(exported_fp32 / "adapters" / "agentune_adapters.json")["adapters"] == [
        "iter_20",
        "iter_40",
    ]
    for ckpt in ckpts:
        adir = exported_fp32 / "adapters" / ckpt.name
        assert {p.name for p in adir.iterdir()} == {
            "adapter_config.json",
            "adapter_model.safetensors",
            "agentune_adapter.json",
        }
        prov = read_json(adir / "agentune_adapter.json")
        assert prov["iteration"] == ckpt.iteration
        assert prov["checkpoint_sha256"] == sha256_file(ckpt.path)
        assert (
            prov["base_weights_sha256"] == read_json(trained["base"] / "agentune_base.json")["weights_sha256"]
        )
        assert prov["dataset_fingerprint"] == train_prov["dataset"]["fingerprint"] is not None
        assert prov["train"] == train_prov
        assert prov["export_config"]["dtype"] == "float32"
        model = PeftModel.from_pretrained(_load_base(trained), str(adir))
        raw = torch.load(ckpt.path, map_location="cpu", weights_only=False)["state_dict"]
        q = model.base_model.model.model.layers[1].self_attn.q_proj
        torch.testing.assert_close(
            q.lora_A["default"].weight,
            raw["llm.base_model.model.model.layers.1.self_attn.q_proj.lora_A.default.weight"],
            rtol=0,
            atol=0,
        )
        assert q.scaling["default"] == 16 / 8


def test_adapter_matches_xtuner_pth_to_hf(trained, exported_fp32, tmp_path):
    from safetensors.torch import load_file

    ckpt = trained["checkpoints"] / "iter_40.pth"
    out = tmp_path / "xtuner_adapter"
    cmd = [
        sys.executable, "-m", "agentune.train.xtuner_run", "xtuner.tools.model_converters.pth_to_hf",
        str(trained["checkpoints"] / "xtuner_config.py"), str(ckpt), str(out), "--safe-serialization", "--fp32",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = load_file(str(out / "adapter_model.safetensors"))
    ours = load_file(str(exported_fp32 / "adapters" / "iter_40" / "adapter_model.safetensors"))
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and (ours[key] == theirs[key]).all(), key
    a = json.loads((out / "adapter_config.json").read_text())
    b = json.loads((exported_fp32 / "adapters" / "iter_40" / "adapter_config.json").read_text())
    for key in (
        "r",
        "lora_alpha",
        "lora_dropout",
        "bias",
        "task_type",
        "peft_type",
        "use_rslora",
        "inference_mode",
    ):
        assert a[key] == b[key], key
    assert sorted(a["target_modules"]) == sorted(b["target_modules"])


def test_merged_fp32_logits_equal_unmerged_peft(trained, exported_fp32):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(exported_fp32 / "merged")).eval()
    peft_model = PeftModel.from_pretrained(
        _load_base(trained), str(exported_fp32 / "adapters" / "iter_40")
    ).eval()
    base = _load_base(trained)
    ids = torch.randint(0, merged.config.vocab_size, (3, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want, before = merged(ids).logits, peft_model(ids).logits, base(ids).logits
    assert (want - before).abs().max() > 1e-3  # the adapter changes the model: the check below has teeth
    # fp32: W + (alpha/r)·B·A added once vs the LoRA path on every forward differ by rounding only (the
    # largest difference seen is 1.5e-5), far below the adapter's own effect (> 1e-3, checked above)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=5e-5)
    assert merged.dtype == torch.float32


def test_merge_equals_w_plus_scaled_ba_bf16(trained, exported_fp32, tmp_path, tiny_base):
    """bf16 output: every weight = bf16(W + alpha/r * B @ A) (targets) or bf16(W); unsharded base too."""
    import torch
    from safetensors.torch import load_file

    from agentune.export import merge

    adapter = exported_fp32 / "adapters" / "iter_20"
    state = load_file(str(adapter / "adapter_model.safetensors"))
    base = dict(merge.iter_tensors(trained["base"]))
    for i, source in enumerate((trained["base"], tiny_base)):  # two shards + index; one model.safetensors
        out = tmp_path / f"merged{i}"
        out.mkdir()
        summary = merge.merge_weights(source, adapter, out, "bfloat16", progress=False)
        assert summary["merged_modules"] == 14  # 7 linear layers x 2 blocks
        got = dict(merge.iter_tensors(out))
        assert sorted(got) == sorted(base)
        n_targets = 0
        for name, w in base.items():
            a_key = "base_model.model." + name.removesuffix(".weight") + ".lora_A.weight"
            want = w.float()
            if a_key in state:
                b = state[a_key.replace("lora_A", "lora_B")]
                want = want + (16 / 8) * (b.float() @ state[a_key].float())
                n_targets += 1
            assert got[name].dtype == torch.bfloat16, name
            torch.testing.assert_close(got[name].float(), want, rtol=2**-8, atol=1e-8, msg=name)
        assert n_targets == 14
    assert (tmp_path / "merged0" / "model.safetensors.index.json").is_file()
    assert not (tmp_path / "merged1" / "model.safetensors.index.json").exists()


def test_merged_model_stops_by_itself(exported_fp32):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from agentune.core.io import read_json

    merged_dir = exported_fp32 / "merged"
    model = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    gen = json.loads((merged_dir / "generation_config.json").read_text())
    assert set(gen["eos_token_id"]) == {im_end, eot}
    assert read_json(merged_dir / "agentune_merged.json")["stop_tokens"] == ["<|im_end|>", "<|endoftext|>"]
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Say ok 99"}], add_generation_prompt=True, tokenize=False
    )
    inputs = tok(text, return_tensors="pt", add_special_tokens=False)
    n_prompt, budget = inputs["input_ids"].shape[1], 40
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=budget)
        # The same model with a generation config that lacks the template's stop tokens runs on past them.
        other = tok.convert_tokens_to_ids("<|im_start|>")
        no_stop = GenerationConfig(do_sample=False, eos_token_id=[other], pad_token_id=other)
        endless = model.generate(**inputs, max_new_tokens=budget, generation_config=no_stop)
    new = out[0, n_prompt:].tolist()
    assert new[-1] == im_end and len(new) < budget
    assert endless[0, n_prompt : n_prompt + len(new)].tolist() == new and endless.shape[1] - n_prompt > len(
        new
    )


def test_llama3_generation_config_stops_on_eot(tiny_base_llama3, tmp_path):
    from agentune.export import write_model_files
    from agentune.protocol.templates import get_template

    style = {"role": "system", "prefix": "Response:"}
    info = write_model_files(tiny_base_llama3, tmp_path, get_template("llama3"), "bfloat16", style)
    gen = json.loads((tmp_path / "generation_config.json").read_text())
    assert (
        info["stop_tokens"] == ["<|eot_id|>", "<|end_of_text|>"]
        and gen["eos_token_id"] == info["eos_token_id"]
    )
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    # the agent's chat template: tools in lagent's protocol, results as the training data sent them
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path)
    tool = {"type": "function", "function": {"name": "now", "description": "The time.", "parameters": {}}}
    call = {"id": "c", "type": "function", "function": {"name": "now", "arguments": {}}}
    text = tok.apply_chat_template([{"role": "user", "content": "Time?"}, {"role": "assistant", "tool_calls": [call]},
                                    {"role": "tool", "tool_call_id": "c", "content": "9:00"}],
                                   tools=[tool], add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a assistant who can utilize external tools."
        in text
    )
    assert (
        "Action: now\nAction Input: {}<|eot_id|><|start_header_id|>system<|end_header_id|>\n\nResponse:9:00"
        in text
    )


def _copy_checkpoints(trained, dst: Path) -> Path:
    shutil.copytree(trained["checkpoints"], dst)
    return dst


def test_corrupt_checkpoint_is_named(trained, tmp_path):
    from agentune import export

    work = _copy_checkpoints(trained, tmp_path / "ck")
    bad = work / "iter_20.pth"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(StageError, match=r"iter_20\.pth: cannot read checkpoint .*corrupt or incomplete"):
        export.run(_cfg(trained, tmp_path, checkpoints=work))
    assert not (tmp_path / "adapters").exists() and not (tmp_path / "merged").exists()
    assert not list(tmp_path.glob(".*tmp-*"))


def test_unknown_merge_checkpoint_lists_available(trained, tmp_path):
    from agentune import export

    with pytest.raises(StageError, match=r"no iter_7\.pth .*available: iter_20, iter_40 \(or 'last'\)"):
        export.run(_cfg(trained, tmp_path, merge_checkpoint="iter_7"))
    with pytest.raises(Exception, match="merge_checkpoint"):
        export.Config(merge_checkpoint="best")


def test_mismatched_base_is_rejected(trained, tmp_path):
    from agentune import base_model, export
    from agentune.core.io import read_json, write_json

    other_seed = tmp_path / "seed1"
    base_model.run(base_model.Config(source="tiny", out=other_seed, tiny={"seed": 1}))
    with pytest.raises(
        StageError, match=r"base model mismatch: .*sha256 [0-9a-f]{64}, but .* has [0-9a-f]{64}"
    ):
        export.run(_cfg(trained, tmp_path, base_model=other_seed))

    # A different architecture is caught from the shapes even when no hash was recorded.
    narrow = tmp_path / "narrow"
    base_model.run(base_model.Config(source="tiny", out=narrow, tiny={"hidden_size": 32}))
    work = _copy_checkpoints(trained, tmp_path / "ck")
    prov = read_json(work / "agentune_train.json")
    del prov["base_model"]["weights_sha256"]
    write_json(work / "agentune_train.json", prov)
    with pytest.raises(
        StageError,
        match=r"does not fit the base model .*o_proj\.weight: base shape \[32, 32\], adapter gives \[64, 64\]",
    ):
        export.run(_cfg(trained, tmp_path, base_model=narrow, checkpoints=work))
    assert not (tmp_path / "merged").exists()


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_killed_merge_leaves_previous_output_intact(trained, tmp_path):
    """The export process is killed by the kernel (SIGXFSZ) while writing the second output shard."""
    import signal

    import yaml

    from agentune.core.io import read_json

    out = tmp_path / "out"
    params = tmp_path / "params.yaml"
    section = {k: str(v) for k, v in _cfg(trained, out, dtype="float32").model_dump().items()}
    params.write_text(yaml.safe_dump({"export": section}), encoding="utf-8")
    cmd = [sys.executable, "-m", "agentune.cli", "export", "--params", str(params)]
    first = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _tree(out / "merged")
    shard1, shard2 = (out / "merged" / f"model-0000{i}-of-00002.safetensors" for i in (1, 2))
    # Any file may grow to `limit` bytes: the adapters and the first shard fit, the second does not.
    limit = shard2.stat().st_size // 2
    assert (
        shard1.stat().st_size < limit
        and (out / "adapters/iter_40/adapter_model.safetensors").stat().st_size < limit
    )

    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    # Python ignores SIGXFSZ at startup (a write then fails with EFBIG); restore the default action,
    # which kills the process on the spot, like an OOM kill or a power cut would.
    launcher = "import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); from agentune.cli import main; sys.exit(main())"
    killed_cmd = [sys.executable, "-c", launcher, *cmd[3:]]
    killed = subprocess.run(killed_cmd, env=_env(), capture_output=True, text=True, preexec_fn=cap_file_size)
    assert killed.returncode == -signal.SIGXFSZ, killed.stderr[-2000:]
    leftovers = list(out.glob(".merged.tmp-*"))
    assert leftovers and (leftovers[0] / shard1.name).is_file()  # it died mid-merge, after shard 1
    assert _tree(out / "merged") == before  # the previous merged model is untouched

    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not list(out.glob(".*.tmp-*"))  # stale temp dirs of the killed run are cleaned up
    after = read_json(out / "merged" / "agentune_merged.json")["weights_sha256"]
    assert after == json.loads(before["agentune_merged.json"])["weights_sha256"]
    assert (
        _tree(out / "merged")["model-00002-of-00002.safetensors"]
        == before["model-00002-of-00002.safetensors"]
    )
