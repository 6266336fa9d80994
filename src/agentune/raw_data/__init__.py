"""Stage raw_data: gather the training sources into data/raw/<source name>/, with their provenance.

`raw_data.sources` lists the sources, each a folder under `out`:
- `agent-flan`: Agent-FLAN's seven JSONL files from `origin` `sample` (a deterministic, seeded generator
  of Agent-FLAN-format ReAct conversations over a catalogue of real Python tools; the embedded default,
  every mix knob in `raw_data.sample.mix`), `local` (a folder holding the seven files, e.g.
  /dataset/Agent-FLAN/data) or `hub` (internlm/Agent-FLAN at a pinned revision, downloaded file by
  file; token from HF_TOKEN only);
- `openai` (OpenAI's chat fine-tuning JSONL with `tools` and `tool_calls`) and `sharegpt`
  (LLaMA-Factory's ShareGPT with tools): the user's file under data/sources/ (a dvc.yaml dependency),
  copied byte for byte, and optionally its evaluation file (`heldout_path`).

Files are copied, not parsed: `convert` reads each format, names bad records by file:line and renders
every source into the protocol. `weight` and `max_records` travel in the provenance for `convert` to
apply. Writes `agentune_raw.json` (`artifacts.RawDataRecord`) in `out`: the resolved config and, per
source, its kind, origin and every file's role, line count and sha256.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from huggingface_hub import hf_hub_download
from tqdm import tqdm

from agentune.core.artifacts import RawDataRecord
from agentune.core.errors import StageError
from agentune.core.io import atomic_dir, sha256_file
from agentune.raw_data.config import (
    AGENT_FLAN_FILES,
    AgentFlanSource,
    Config,
    FileSource,
    HubConfig,
    LocalConfig,
    SampleConfig,
)
from agentune.raw_data.sample import file_counts, generate

log = logging.getLogger(__name__)

__all__ = ["AGENT_FLAN_FILES", "Config", "run"]


def write_sample(cfg: SampleConfig, out: Path) -> dict:
    """Generate the sample into `out`, one file per Agent-FLAN file name."""
    counts = file_counts(cfg.n_records, cfg.mix.files)
    with tqdm(total=cfg.n_records, desc="raw_data sample", unit="rec", mininterval=1.0) as bar:
        for name in AGENT_FLAN_FILES:
            with open(out / name, "w", encoding="utf-8", newline="\n") as fh:
                for rec in generate(name, counts[name], cfg.seed, cfg.mix):
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
                f"folder and use the source's `origin: local` with `raw_data.local.path: <folder>`"
            ) from None
        shutil.copyfile(cached, out / name)
    return {"repo_id": cfg.repo_id, "revision": cfg.revision}


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def _file_info(folder: Path, name: str, role: str, origin: str | None = None) -> dict:
    info = {
        "file": name,
        "role": role,
        "lines": _count_lines(folder / name),
        "sha256": sha256_file(folder / name),
    }
    return {**info, "origin": origin} if origin else info


def gather_agent_flan(source: AgentFlanSource, cfg: Config, out: Path) -> tuple[dict, list[dict]]:
    """The seven Agent-FLAN files from the source's origin (raw_data.sample / local / hub)."""
    if source.origin == "sample":
        info = write_sample(cfg.sample, out)
    elif source.origin == "local":
        info = copy_local(cfg.local, out)
    else:
        info = download_hub(cfg.hub, out)
    return info, [_file_info(out, n, "train") for n in AGENT_FLAN_FILES]


def gather_file(source: FileSource, out: Path) -> tuple[dict, list[dict]]:
    """Copy the user's file (and its evaluation file) byte for byte."""
    files = []
    for role, path in (("train", source.path), ("heldout", source.heldout_path)):
        if path is None:
            continue
        if not path.is_file():
            raise StageError(
                f"raw_data.sources[{source.name}].{'path' if role == 'train' else 'heldout_path'}={path}: "
                f"no such file; write your {source.kind} conversations there (docs/data.md shows the format)"
            )
        name = path.name if role == "train" else f"heldout-{path.name}"
        if role == "heldout" and name.removeprefix("heldout-") == source.path.name:
            name = f"heldout-eval-{path.name}"
        shutil.copyfile(path, out / name)
        files.append(_file_info(out, name, role, str(path)))
    return {"path": str(source.path)}, files


def run(cfg: Config) -> None:
    """Write every source's files and their provenance to `cfg.out`, atomically."""
    records = []
    with atomic_dir(cfg.out) as tmp:
        for source in cfg.sources:
            folder = tmp / source.name
            folder.mkdir()
            if isinstance(source, AgentFlanSource):
                info, files = gather_agent_flan(source, cfg, folder)
            else:
                info, files = gather_file(source, folder)
            records.append({**source.model_dump(mode="json"), "origin_info": info, "files": files})
            n = sum(f["lines"] for f in files)
            log.info("raw_data %s (%s): %d records in %d files", source.name, source.kind, n, len(files))
        RawDataRecord(config=cfg.model_dump(mode="json"), seed=cfg.seed, sources=records).write(tmp)
    log.info("raw_data: %d sources -> %s", len(records), cfg.out)
