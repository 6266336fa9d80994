"""Stage raw_data: the sample, a local folder of the seven files, and the hub source offline."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agentune import raw_data
from agentune.cli import main
from agentune.core.artifacts import RawDataRecord
from agentune.core.io import sha256_file


def run_cli(tmp: Path, monkeypatch, **section) -> int:
    monkeypatch.chdir(tmp)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"raw_data": {"out": "raw", **section}}))
    return main(["raw_data", "--params", str(params)])


def test_sample_writes_the_seven_files_deterministically(tmp_path, monkeypatch):
    assert run_cli(tmp_path, monkeypatch, sample={"seed": 7, "n_records": 140}) == 0
    raw = tmp_path / "raw"
    assert sorted(p.name for p in raw.glob("*.jsonl")) == sorted(raw_data.AGENT_FLAN_FILES)
    prov = json.loads((raw / RawDataRecord.FILE).read_text())
    assert prov["source"] == "sample" and prov["config"]["sample"] == {"seed": 7, "n_records": 140}
    assert sum(f["lines"] for f in prov["files"].values()) == 140
    for name in raw_data.AGENT_FLAN_FILES:
        lines = (raw / name).read_text().splitlines()
        assert len(lines) == prov["files"][name]["lines"] > 0
        for line in lines:
            rec = json.loads(line)
            assert set(rec) == {"id", "conversation"} and rec["id"].startswith(name.removesuffix(".jsonl"))
            assert all(set(m) == {"role", "content", "loss"} for m in rec["conversation"])
    first = {n: sha256_file(raw / n) for n in raw_data.AGENT_FLAN_FILES}
    assert run_cli(tmp_path, monkeypatch, sample={"seed": 7, "n_records": 140}) == 0
    assert first == {n: sha256_file(raw / n) for n in raw_data.AGENT_FLAN_FILES}
    assert run_cli(tmp_path, monkeypatch, sample={"seed": 8, "n_records": 140}) == 0
    assert first != {n: sha256_file(raw / n) for n in raw_data.AGENT_FLAN_FILES}
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]


def test_local_copies_the_seven_files(tmp_path, monkeypatch):
    src = tmp_path / "Agent-FLAN" / "data"
    raw_data.run(raw_data.Config(out=src, sample={"n_records": 70}))
    assert run_cli(tmp_path, monkeypatch, source="local", local={"path": str(src)}) == 0
    for name in raw_data.AGENT_FLAN_FILES:
        assert sha256_file(tmp_path / "raw" / name) == sha256_file(src / name)
    prov = json.loads((tmp_path / "raw" / RawDataRecord.FILE).read_text())
    assert prov["source"] == "local" and prov["origin"]["path"] == str(src.resolve())


def test_local_missing_files_are_listed(tmp_path, monkeypatch, capsys):
    src = tmp_path / "partial"
    raw_data.run(raw_data.Config(out=src, sample={"n_records": 70}))
    (src / "toolbench_negative.jsonl").unlink()
    (src / "agent_instruct_tflan.jsonl").rename(src / "agent_instruct_tflan.json")
    assert run_cli(tmp_path, monkeypatch, source="local", local={"path": str(src)}) == 1
    err = capsys.readouterr().err
    assert "missing 2 of the 7 Agent-FLAN files" in err
    assert "agent_instruct_tflan.jsonl" in err and "toolbench_negative.jsonl" in err
    assert not (tmp_path / "raw").exists()

    assert run_cli(tmp_path, monkeypatch, source="local", local={"path": str(tmp_path / "nope")}) == 1
    assert "not a directory" in capsys.readouterr().err


def test_hub_offline_points_to_local(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    rc = run_cli(tmp_path, monkeypatch, source="hub", hub={"revision": "a" * 40})
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "internlm/Agent-FLAN@" + "a" * 40 in err and "data/agent_instruct_react.jsonl" in err
    assert "raw_data.source: local" in err and "Traceback" not in err
    assert not (tmp_path / "raw").exists()


def test_hub_needs_a_pinned_revision(tmp_path, monkeypatch, capsys):
    assert run_cli(tmp_path, monkeypatch, source="hub") == 2
    assert "raw_data.hub.revision" in capsys.readouterr().err
    assert run_cli(tmp_path, monkeypatch, source="hub", hub={"revision": "main"}) == 2
    assert "is a branch" in capsys.readouterr().err
    assert run_cli(tmp_path, monkeypatch, source="sample", sample={"n_records": 10, "seeds": 1}) == 2
    assert "raw_data.sample.seeds" in capsys.readouterr().err
