"""Real DVC in a temp git repo: base_model -> raw_data -> convert from the project's own dvc.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import BFCL_CACHE, REPO

BIN = Path(sys.executable).parent


def sh(cwd: Path, *cmd: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(cwd / "src"),  # the stages run the copied code that DVC hashes
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def set_params(repo: Path, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for name, values in sections.items():
        params[name].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.network
@pytest.mark.slow
def test_dvc_repro_builds_data_stages_and_reruns_only_what_changed(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", "params.yaml", "data/sources/README.md"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    set_params(
        repo,
        base_model={"source": "tiny"},
        raw_data={"sample": {"seed": 0, "n_records": 140}},
        convert={"token_stats_records": 50, "leak_check": {"bfcl_cache_dir": str(BFCL_CACHE)}},
    )
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")

    first = sh(repo, "dvc", "repro", "convert")
    # base_model and raw_data are independent: DVC runs them in either order, convert after both
    assert sorted(ran(first)[:2]) == ["base_model", "raw_data"] and ran(first)[2:] == ["convert"]
    metrics = json.loads((repo / "metrics/data.json").read_text())
    assert metrics["records"] == 140 and metrics["rejected"] == 0
    assert metrics["train"] + metrics["heldout"] == 140 and metrics["tokens"]["n"] == 50
    assert (repo / "data/converted/state.json").is_file() and (repo / "data/eval/heldout.jsonl").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["raw_data"]["params"]["params.yaml"]["raw_data"]["sample"]["n_records"] == 140
    assert {d["path"] for d in lock["convert"]["deps"]} >= {
        "data/raw",
        "models/base",
        "src/agentune/convert",
    }

    second = sh(repo, "dvc", "repro", "convert")
    assert ran(second) == []
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status", "convert")

    set_params(repo, raw_data={"sample": {"seed": 1, "n_records": 140}})
    third = sh(repo, "dvc", "repro", "convert")
    assert ran(third) == ["raw_data", "convert"]
    changed = json.loads((repo / "metrics/data.json").read_text())
    assert changed["fingerprint"] != metrics["fingerprint"]

    # back to seed 0: the same inputs give the same dataset fingerprint (restored from the DVC cache
    # or rebuilt, either way identical)
    set_params(repo, raw_data={"sample": {"seed": 0, "n_records": 140}})
    sh(repo, "dvc", "repro", "convert")
    assert json.loads((repo / "metrics/data.json").read_text())["fingerprint"] == metrics["fingerprint"]

    # a user's own file is a dependency: adding it as a source, then editing it, reruns raw_data + convert
    from helpers.sources import OPENAI_DOC_EXAMPLE, weather_record

    own = repo / "data/sources/own.jsonl"
    own.write_text("".join(json.dumps(weather_record(i)) + "\n" for i in range(30)))
    sources = [{"name": "agent-flan", "kind": "agent-flan"},
               {"name": "own", "kind": "openai", "path": "data/sources/own.jsonl"}]  # fmt: skip
    set_params(repo, raw_data={"sources": sources})
    assert ran(sh(repo, "dvc", "repro", "convert")) == ["raw_data", "convert"]
    before = json.loads((repo / "metrics/data.json").read_text())["sources"]["own"]
    assert before["kept"] == 30 and before["files_sha256"]["own.jsonl"]
    with open(own, "a") as fh:
        fh.write(json.dumps(OPENAI_DOC_EXAMPLE) + "\n")
    assert "data/sources" in sh(repo, "dvc", "status", "raw_data")
    assert ran(sh(repo, "dvc", "repro", "convert")) == ["raw_data", "convert"]
    after = json.loads((repo / "metrics/data.json").read_text())["sources"]["own"]
    assert after["kept"] == 31 and after["files_sha256"] != before["files_sha256"]

    # paths live in params.yaml only: dvc.yaml reads them (`${convert.heldout_out}`), so moving an
    # output there moves what the stage writes and what DVC tracks, with no second edit
    set_params(repo, convert={"heldout_out": "data/eval/moved/heldout.jsonl"})
    assert ran(sh(repo, "dvc", "repro", "convert")) == ["convert"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    tracked = [o["path"] for o in lock["stages"]["convert"]["outs"]]
    assert "data/eval/moved/heldout.jsonl" in tracked and "data/eval/heldout.jsonl" not in tracked
    assert (repo / "data/eval/moved/heldout.jsonl").stat().st_size > 0
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status", "convert")
