"""Stage raw_data: the sample, a local folder of the seven files, the hub offline, and users' own files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agentune import raw_data
from agentune.cli import main
from agentune.core.artifacts import RawDataRecord
from agentune.core.io import sha256_file

FLAN = "agent-flan"


def run_cli(tmp: Path, monkeypatch, origin: str = "sample", sources: list | None = None, **section) -> int:
    monkeypatch.chdir(tmp)
    params = tmp / "params.yaml"
    sources = sources or [{"name": FLAN, "kind": "agent-flan", "origin": origin}]
    params.write_text(yaml.safe_dump({"raw_data": {"out": "raw", "sources": sources, **section}}))
    return main(["raw_data", "--params", str(params)])


def write_sample(folder: Path, n: int) -> None:
    """The seven sample files straight into `folder` (a stand-in for a local Agent-FLAN copy)."""
    folder.mkdir(parents=True)
    raw_data.write_sample(raw_data.SampleConfig(n_records=n), folder)


def test_sample_writes_the_seven_files_deterministically(tmp_path, monkeypatch):
    assert run_cli(tmp_path, monkeypatch, sample={"seed": 7, "n_records": 140}) == 0
    raw = tmp_path / "raw" / FLAN
    assert sorted(p.name for p in raw.glob("*.jsonl")) == sorted(raw_data.AGENT_FLAN_FILES)
    prov = json.loads((tmp_path / "raw" / RawDataRecord.FILE).read_text())
    (source,) = prov["sources"]
    assert (source["name"], source["kind"], source["origin"]) == (FLAN, "agent-flan", "sample")
    assert prov["config"]["sample"]["seed"] == 7 and prov["config"]["sample"]["mix"]["spoken_share"] == 0.3
    assert sum(f["lines"] for f in source["files"]) == 140
    for f in source["files"]:
        lines = (raw / f["file"]).read_text().splitlines()
        assert (
            len(lines) == f["lines"] > 0
            and f["sha256"] == sha256_file(raw / f["file"])
            and f["role"] == "train"
        )
        for line in lines:
            rec = json.loads(line)
            assert set(rec) == {"id", "conversation"} and rec["id"].startswith(
                f["file"].removesuffix(".jsonl")
            )
            assert all(set(m) == {"role", "content", "loss"} for m in rec["conversation"])
    first = {n: sha256_file(raw / n) for n in raw_data.AGENT_FLAN_FILES}
    assert run_cli(tmp_path, monkeypatch, sample={"seed": 7, "n_records": 140}) == 0
    assert first == {n: sha256_file(raw / n) for n in raw_data.AGENT_FLAN_FILES}
    assert run_cli(tmp_path, monkeypatch, sample={"seed": 8, "n_records": 140}) == 0
    assert first != {n: sha256_file(raw / n) for n in raw_data.AGENT_FLAN_FILES}
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]


def test_the_mix_is_read_from_params(tmp_path, monkeypatch):
    """Every knob of the sample's mix is a params key: a file's share, here, moves its record count."""
    files = {name: 0.0 for name in raw_data.AGENT_FLAN_FILES} | {"toolbench_negative.jsonl": 1.0}
    files["toolbench_react_10p.jsonl"] = 1.0
    assert run_cli(tmp_path, monkeypatch, sample={"n_records": 40, "mix": {"files": files}}) == 0
    prov = json.loads((tmp_path / "raw" / RawDataRecord.FILE).read_text())
    lines = {f["file"]: f["lines"] for f in prov["sources"][0]["files"]}
    assert lines["toolbench_negative.jsonl"] == lines["toolbench_react_10p.jsonl"] == 20
    assert sum(lines.values()) == 40
    assert run_cli(tmp_path, monkeypatch, sample={"n_records": 40, "mix": {"files": {"a.jsonl": 1}}}) == 2


def test_local_copies_the_seven_files(tmp_path, monkeypatch):
    src = tmp_path / "Agent-FLAN" / "data"
    write_sample(src, 70)
    assert run_cli(tmp_path, monkeypatch, origin="local", local={"path": str(src)}) == 0
    for name in raw_data.AGENT_FLAN_FILES:
        assert sha256_file(tmp_path / "raw" / FLAN / name) == sha256_file(src / name)
    prov = json.loads((tmp_path / "raw" / RawDataRecord.FILE).read_text())
    assert prov["sources"][0]["origin"] == "local"
    assert prov["sources"][0]["origin_info"]["path"] == str(src.resolve())


def test_local_missing_files_are_listed(tmp_path, monkeypatch, capsys):
    src = tmp_path / "partial"
    write_sample(src, 70)
    (src / "toolbench_negative.jsonl").unlink()
    (src / "agent_instruct_tflan.jsonl").rename(src / "agent_instruct_tflan.json")
    assert run_cli(tmp_path, monkeypatch, origin="local", local={"path": str(src)}) == 1
    err = capsys.readouterr().err
    assert "missing 2 of the 7 Agent-FLAN files" in err
    assert "agent_instruct_tflan.jsonl" in err and "toolbench_negative.jsonl" in err
    assert not (tmp_path / "raw").exists()

    assert run_cli(tmp_path, monkeypatch, origin="local", local={"path": str(tmp_path / "nope")}) == 1
    assert "not a directory" in capsys.readouterr().err


def test_hub_offline_points_to_local(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    rc = run_cli(tmp_path, monkeypatch, origin="hub", hub={"revision": "a" * 40})
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "internlm/Agent-FLAN@" + "a" * 40 in err and "data/agent_instruct_react.jsonl" in err
    assert "origin: local" in err and "Traceback" not in err
    assert not (tmp_path / "raw").exists()


def test_hub_needs_a_pinned_revision(tmp_path, monkeypatch, capsys):
    assert run_cli(tmp_path, monkeypatch, origin="hub") == 2
    assert "raw_data.hub.revision" in capsys.readouterr().err
    assert run_cli(tmp_path, monkeypatch, origin="hub", hub={"revision": "main"}) == 2
    assert "is a branch" in capsys.readouterr().err
    assert run_cli(tmp_path, monkeypatch, sample={"n_records": 10, "seeds": 1}) == 2
    assert "raw_data.sample.seeds" in capsys.readouterr().err


def test_a_users_file_is_copied_with_its_hash_beside_the_sample(tmp_path, monkeypatch):
    own = tmp_path / "data/sources/mine.jsonl"
    own.parent.mkdir(parents=True)
    own.write_text('{"messages": []}\n{"messages": []}\n')
    (tmp_path / "data/sources/mine-eval.jsonl").write_text('{"messages": []}\n')
    sources = [
        {"name": FLAN, "kind": "agent-flan"},
        {"name": "mine", "kind": "openai", "path": "data/sources/mine.jsonl", "weight": 2,
         "heldout_path": "data/sources/mine-eval.jsonl"},
    ]  # fmt: skip
    assert run_cli(tmp_path, monkeypatch, sources=sources, sample={"n_records": 14}) == 0
    prov = json.loads((tmp_path / "raw" / RawDataRecord.FILE).read_text())
    mine = prov["sources"][1]
    assert (mine["name"], mine["kind"], mine["weight"]) == ("mine", "openai", 2.0)
    train, held = mine["files"]
    assert (train["role"], train["lines"], train["origin"]) == ("train", 2, "data/sources/mine.jsonl")
    assert train["sha256"] == sha256_file(own) == sha256_file(tmp_path / "raw/mine" / train["file"])
    assert (held["role"], held["lines"]) == ("heldout", 1)


def test_a_users_file_must_live_under_data_sources(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.jsonl").write_text("{}\n")
    sources = [{"name": "mine", "kind": "sharegpt", "path": "mine.jsonl"}]
    assert run_cli(tmp_path, monkeypatch, sources=sources) == 2
    assert "put the file under data/sources/" in capsys.readouterr().err
    sources = [{"name": "mine", "kind": "openai", "path": "data/sources/missing.jsonl"}]
    assert run_cli(tmp_path, monkeypatch, sources=sources) == 1
    assert "data/sources/missing.jsonl: no such file" in capsys.readouterr().err
    sources = [{"name": "a", "kind": "agent-flan"}, {"name": "a", "kind": "agent-flan"}]
    assert run_cli(tmp_path, monkeypatch, sources=sources) == 2
    assert "names must be unique" in capsys.readouterr().err
