"""Stage raw_data: put Agent-FLAN's seven JSONL files in data/raw/agent-flan/ (sample, local or hub).

Sources: `sample` (a deterministic, seeded generator of Agent-FLAN-format ReAct conversations over a
catalogue of real Python tools; the embedded default), `local` (a folder holding the seven files, e.g.
/dataset/Agent-FLAN/data) and `hub` (internlm/Agent-FLAN at a pinned revision, downloaded file by file;
token from HF_TOKEN only). Writes agentune_raw.json (`artifacts.RawDataRecord`) beside the files: source, resolved config, and
per-file record counts and sha256.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from agentune.core.artifacts import RawDataRecord
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, sha256_file
from agentune.raw_data.config import Config, HubConfig, LocalConfig, SampleConfig

log = logging.getLogger(__name__)

__all__ = ["Config", "run"]

#: Agent-FLAN's seven data files (the hub repo keeps them under data/).
AGENT_FLAN_FILES: tuple[str, ...] = (
    "agent_instruct_react.jsonl",
    "agent_instruct_tflan.jsonl",
    "toolbench_instruct_j1s1_3k.jsonl",
    "toolbench_negative.jsonl",
    "toolbench_react_10p.jsonl",
    "toolbench_tflan_60p_r10r5u7.jsonl",
    "toolbench_tflan_cot_30p.jsonl",
)


def write_sample(cfg: SampleConfig, out: Path) -> dict:
    """Generate the sample into `out`, one file per Agent-FLAN file name."""
    from tqdm import tqdm

    from agentune.raw_data.sample import DEFAULT_MIX, file_counts, generate

    counts = file_counts(cfg.n_records, DEFAULT_MIX)
    with tqdm(total=cfg.n_records, desc="raw_data sample", unit="rec", mininterval=1.0) as bar:
        for name in AGENT_FLAN_FILES:
            with open(out / name, "w", encoding="utf-8", newline="\n") as fh:
                for rec in generate(name, counts[name], cfg.seed):
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    bar.update()
    return {"generator": "agentune.raw_data.sample", "seed": cfg.seed, "n_records": cfg.n_records}


def check_local_dir(path: Path) -> None:
    """A folder with all seven Agent-FLAN files, or a StageError listing what is missing."""
    if not path.is_dir():
        raise StageError(
            f"raw_data.local.path={path}: not a directory; point it at the folder holding Agent-FLAN's "
            f"seven .jsonl files (the hub repo's data/ folder)"
        )
    missing = [n for n in AGENT_FLAN_FILES if not (path / n).is_file()]
    if missing:
        found = sorted(p.name for p in path.glob("*.jsonl"))
        raise StageError(
            f"raw_data.local.path={path}: missing {len(missing)} of the 7 Agent-FLAN files: "
            f"{', '.join(missing)} (found: {', '.join(found) or 'no .jsonl files'})"
        )
    for n in AGENT_FLAN_FILES:
        if not os.access(path / n, os.R_OK):
            raise StageError(f"{path / n}: not readable (check its permissions)")


def copy_local(cfg: LocalConfig, out: Path) -> dict:
    check_local_dir(cfg.path)
    for name in AGENT_FLAN_FILES:
        shutil.copyfile(cfg.path / name, out / name)
    return {"path": str(cfg.path.resolve())}


def download_hub(cfg: HubConfig, out: Path) -> dict:
    """Download each file at the pinned revision (not `load_dataset`: its schema inference fails)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with transformers
        raise StageError("source=hub needs the huggingface_hub package") from exc

    token = os.environ.get("HF_TOKEN") or None
    for name in AGENT_FLAN_FILES:
        remote = f"{cfg.subdir}/{name}" if cfg.subdir else name
        try:
            cached = hf_hub_download(
                repo_id=cfg.repo_id, filename=remote, repo_type="dataset", revision=cfg.revision, token=token
            )
        except Exception as exc:  # network, offline mode, 404, auth: all user-fixable
            raise StageError(
                f"raw_data source=hub: could not download {cfg.repo_id}@{cfg.revision}/{remote}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Without Hub access "
                f"(HF_HUB_OFFLINE is {os.environ.get('HF_HUB_OFFLINE', 'unset')}), copy the seven files to a "
                f"folder and use `raw_data.source: local` with `raw_data.local.path: <folder>`"
            ) from None
        shutil.copyfile(cached, out / name)
    return {"repo_id": cfg.repo_id, "revision": cfg.revision}


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def run(cfg: Config) -> None:
    """Write the seven raw files and their provenance to `cfg.out`, atomically."""
    with atomic_dir(cfg.out) as tmp:
        if cfg.source == "sample":
            info = write_sample(cfg.sample, tmp)
        elif cfg.source == "local":
            info = copy_local(cfg.local, tmp)
        else:
            info = download_hub(cfg.hub, tmp)
        files = {
            n: {"lines": _count_lines(tmp / n), "sha256": sha256_file(tmp / n)} for n in AGENT_FLAN_FILES
        }
        RawDataRecord(source=cfg.source, config=cfg.model_dump(mode="json"), origin=info, files=files).write(
            tmp
        )
    total = sum(f["lines"] for f in files.values())
    log.info("raw_data (%s): %d records in %d files -> %s", cfg.source, total, len(files), cfg.out)
