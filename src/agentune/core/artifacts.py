"""The artifact contract: what each stage leaves beside its output, read back by later stages.

Every stage writes one provenance record (JSON, keys sorted) into its output folder: the resolved
config plus what later stages check before they use the artifact (weights hashes, dataset fingerprint,
chat template, iteration). The record types below are the only place their file names and the fields
that other code reads are defined; fields a record carries only for people (counts, timings) pass
through as extra keys. `agentune.serve`, `flows/` and the tests read records through here too.

Also here: the one listing of training checkpoints and adapters (`iter_<N>`), and the one reader of
`dvc.lock`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict

from agentune.core.errors import StageError
from agentune.core.io import read_json, write_json


class Record(BaseModel):
    """A provenance record: typed fields that other code reads; any other key is kept as it is."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    #: file name inside the artifact folder
    FILE: ClassVar[str]
    #: the stage (`agentune <stage>`) whose output holds the record
    STAGE: ClassVar[str]

    @classmethod
    def file(cls, folder: str | Path) -> Path:
        return Path(folder) / cls.FILE

    @classmethod
    def exists(cls, folder: str | Path) -> bool:
        return cls.file(folder).is_file()

    @classmethod
    def read(cls, folder: str | Path):
        """The record in `folder`; a StageError naming the file and the stage to run when it is missing."""
        path = cls.file(folder)
        if not path.is_file():
            raise StageError(
                f"{path}: missing; {folder} is not the output of `agentune {cls.STAGE}` "
                f"(run `agentune {cls.STAGE}` or `dvc repro {cls.STAGE}`)"
            )
        return cls.model_validate(read_json(path))

    @classmethod
    def read_if_present(cls, folder: str | Path):
        """The record, or None when `folder` has none (hand-made or foreign artifacts)."""
        return cls.read(folder) if cls.exists(folder) else None

    def write(self, folder: str | Path) -> Path:
        """Write the record atomically into `folder` (only the keys it was given; keys sorted)."""
        path = self.file(folder)
        write_json(path, self.dump())
        return path

    def dump(self) -> dict[str, Any]:
        """The record as the JSON dict that is written."""
        return self.model_dump(mode="json", exclude_unset=True)


class BaseModelRecord(Record):
    """`models/base/agentune_base.json`: where the weights are, their hash, the chat template."""

    FILE: ClassVar[str] = "agentune_base.json"
    STAGE: ClassVar[str] = "base_model"

    source: str
    template: str
    weights_sha256: str | None = None
    #: set for `source: local` without copying: the directory the weights stay in
    path: str | None = None

    def model_path(self, folder: str | Path) -> Path:
        """Where the weights and tokenizer really are: `folder` itself, or the recorded `path`."""
        return Path(self.path) if self.path else Path(folder)


def base_model_path(folder: str | Path) -> Path:
    """The base model's weights/tokenizer directory; every later stage loads the base through this."""
    return BaseModelRecord.read(folder).model_path(folder)


class RawDataRecord(Record):
    """`data/raw/agentune_raw.json`: per source its kind, mix settings and every file's role, line count
    and sha256 (`{name, kind, weight, max_records, files: [{file, role, lines, sha256}], ...}`)."""

    FILE: ClassVar[str] = "agentune_raw.json"
    STAGE: ClassVar[str] = "raw_data"

    seed: int = 0
    sources: list[dict[str, Any]]


class ConvertRecord(Record):
    """`data/converted/agentune_convert.json`: counts and the dataset fingerprint."""

    FILE: ClassVar[str] = "agentune_convert.json"
    STAGE: ClassVar[str] = "convert"

    fingerprint: str
    train: int
    #: how the data sends tool results back: {role, prefix} (`protocol.react.ToolResultStyle`)
    tool_result: dict[str, str] | None = None


class TrainRecord(Record):
    """`models/checkpoints/agentune_train.json`: the run's inputs, status and checkpoints."""

    FILE: ClassVar[str] = "agentune_train.json"
    STAGE: ClassVar[str] = "train"

    status: str
    fingerprint: str | None = None
    base_model: dict[str, Any] = {}
    dataset: dict[str, Any] = {}
    resumed_from_iter: list[int] = []

    @property
    def base_weights_sha256(self) -> str | None:
        """Weights hash of the base the run trained on."""
        return self.base_model.get("weights_sha256") or None

    @property
    def dataset_fingerprint(self) -> str | None:
        """Fingerprint of the converted dataset the run trained on."""
        return self.dataset.get("fingerprint") or None

    @property
    def tool_result(self) -> dict[str, str] | None:
        """How the training data sent tool results back (`ToolResultStyle` fields)."""
        return self.dataset.get("tool_result") or None


#: The rendered xtuner config that `train` leaves in models/checkpoints (export reads its LoRA settings).
XTUNER_CONFIG_FILE = "xtuner_config.py"


class AdapterRecord(Record):
    """`models/adapters/iter_<N>/agentune_adapter.json`: which checkpoint, trained on what."""

    FILE: ClassVar[str] = "agentune_adapter.json"
    STAGE: ClassVar[str] = "export"

    checkpoint: str | None = None
    iteration: int
    template: str | None = None
    tool_result: dict[str, str] | None = None
    checkpoint_sha256: str | None = None
    adapter_sha256: str | None = None
    base_weights_sha256: str | None = None
    dataset_fingerprint: str | None = None


class AdaptersIndex(Record):
    """`models/adapters/agentune_adapters.json`: the adapters exported, oldest first."""

    FILE: ClassVar[str] = "agentune_adapters.json"
    STAGE: ClassVar[str] = "export"

    adapters: list[str]


class MergedRecord(Record):
    """`models/merged/agentune_merged.json`: the checkpoint merged, dtype, template, stop tokens."""

    FILE: ClassVar[str] = "agentune_merged.json"
    STAGE: ClassVar[str] = "export"

    checkpoint: str | None = None
    iteration: int | None = None
    template: str | None = None
    tool_result: dict[str, str] | None = None


class GgufRecord(Record):
    """`models/gguf/agentune_gguf.json`: each GGUF file (type, bytes, sha256) and what it was made from."""

    FILE: ClassVar[str] = "agentune_gguf.json"
    STAGE: ClassVar[str] = "gguf"

    files: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}  # quantize types not made here, and why
    llama_cpp: dict[str, str] = {}  # the source package the converters came from
    template: str | None = None
    tool_result: dict[str, str] | None = None
    eot_token_id: int | None = None
    config: dict[str, Any] = {}


class MlflowRunRecord(Record):
    """`reports/mlflow_run.json`: where `evaluate` logged to MLflow (read by the Prefect flow)."""

    FILE: ClassVar[str] = "mlflow_run.json"
    STAGE: ClassVar[str] = "evaluate"

    status: str  # logged | disabled | unreachable
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    error: str | None = None


#: Records that name a model's chat template, in the order `serve` looks for one in a model folder.
TEMPLATE_RECORDS: tuple[type[Record], ...] = (BaseModelRecord, MergedRecord, AdapterRecord)


def _recorded(folder: str | Path, field: str, kinds: tuple[type[Record], ...]) -> Any:
    """`field` of the first record of `kinds` in `folder` that sets it, else None."""
    for kind in kinds:
        record = kind.read_if_present(folder)
        if record is not None and getattr(record, field, None):
            return getattr(record, field)
    return None


def recorded_tool_result(folder: str | Path) -> dict[str, str] | None:
    """How the model in `folder` was trained to receive tool results (merged or adapter record), if known."""
    return _recorded(folder, "tool_result", (MergedRecord, AdapterRecord))


def recorded_template(folder: str | Path) -> str | None:
    """The chat template recorded in a model folder's provenance (base, merged or adapter), if any."""
    return _recorded(folder, "template", TEMPLATE_RECORDS)


# --------------------------------------------------------------------------------------------------
# checkpoints and adapters: `iter_<N>`

_ITER = re.compile(r"^iter_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    name: str  # "iter_N"
    iteration: int
    path: Path  # iter_N.pth (a file, or a DeepSpeed ZeRO directory)


def iteration_of(name: str) -> int | None:
    """N for `iter_N` or `iter_N.pth`, else None."""
    m = _ITER.match(name.removesuffix(".pth"))
    return int(m.group(1)) if m else None


def list_checkpoints(work_dir: str | Path) -> list[Checkpoint]:
    """Every `iter_<N>.pth` in an xtuner work dir (`train`'s output), oldest first."""
    work_dir = Path(work_dir)
    found = []
    if work_dir.is_dir():
        for p in work_dir.iterdir():
            it = iteration_of(p.name) if p.name.endswith(".pth") else None
            if it is not None:
                found.append(Checkpoint(f"iter_{it}", it, p))
    return sorted(found, key=lambda c: c.iteration)


def list_adapters(adapters_dir: str | Path) -> list[Checkpoint]:
    """Every `iter_<N>/` adapter folder (`export`'s output), by iteration (the record's, else N)."""
    adapters_dir = Path(adapters_dir)
    found = []
    if adapters_dir.is_dir():
        for d in adapters_dir.iterdir():
            it = iteration_of(d.name) if d.is_dir() else None
            if it is not None:
                record = AdapterRecord.read_if_present(d)
                found.append(Checkpoint(d.name, record.iteration if record else it, d))
    return sorted(found, key=lambda c: (c.iteration, c.name))


# --------------------------------------------------------------------------------------------------
# dvc.lock


def dvc_lock_outs(lock: str | Path = "dvc.lock") -> dict[str, dict[str, str]]:
    """`{stage: {out path: md5}}` for every output recorded in dvc.lock (empty without a lock file)."""
    try:
        doc = yaml.safe_load(Path(lock).read_text(encoding="utf-8")) or {}
    except OSError:
        return {}
    return {
        stage: {o["path"]: o["md5"] for o in info.get("outs") or [] if isinstance(o, dict) and "md5" in o}
        for stage, info in (doc.get("stages") or {}).items()
    }
