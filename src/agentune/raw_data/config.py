"""The `raw_data` params section as typed models (defaults = params.yaml's embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agentune.core.config import StrictModel

#: User files must live here: dvc.yaml lists the folder as a dependency of raw_data, so editing a file
#: reruns raw_data and every stage after it.
SOURCES_DIR = Path("data/sources")

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
#: the sample's multi-step kinds (agent_instruct_react.jsonl) and negative kinds (toolbench_negative.jsonl)
MULTI_KINDS = ("calc", "flight", "two", "session")
NEGATIVE_KINDS = ("near", "unrelated", "no_tool")


class SampleMix(StrictModel):
    """The generated sample's mix: every share and weight the generator draws with."""

    files: dict[str, float] = {  # share of records per Agent-FLAN file (the file holds one record kind)
        "agent_instruct_react.jsonl": 0.19,
        "agent_instruct_tflan.jsonl": 0.04,
        "toolbench_instruct_j1s1_3k.jsonl": 0.22,
        "toolbench_negative.jsonl": 0.25,
        "toolbench_react_10p.jsonl": 0.24,
        "toolbench_tflan_60p_r10r5u7.jsonl": 0.03,
        "toolbench_tflan_cot_30p.jsonl": 0.03,
    }
    multi: dict[str, float] = {"calc": 30, "flight": 20, "two": 15, "session": 35}
    negative: dict[str, float] = {"near": 0.5, "unrelated": 0.2, "no_tool": 0.3}
    tools_offered: list[float] = [35, 30, 20, 10, 5]  # weights of offering 1, 2, ... tools
    formula_share: float = Field(0.0, ge=0, le=1)
    spoken_share: float = Field(0.3, ge=0, le=1)
    renamed_share: float = Field(0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _known(self) -> SampleMix:
        problems = []
        for key, have, allowed in (
            ("files", self.files, AGENT_FLAN_FILES),
            ("multi", self.multi, MULTI_KINDS),
            ("negative", self.negative, NEGATIVE_KINDS),
        ):
            if set(have) != set(allowed):
                problems.append(f"mix.{key} must have exactly the keys {', '.join(allowed)}")
            if any(w < 0 for w in have.values()) or not sum(have.values()) > 0:
                problems.append(f"mix.{key}: weights must be >= 0 with a positive sum")
        if not self.tools_offered or any(w < 0 for w in self.tools_offered) or not sum(self.tools_offered):
            problems.append("mix.tools_offered: weights must be >= 0 with a positive sum")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SampleConfig(StrictModel):
    seed: int = 0
    n_records: int = Field(4000, ge=7, le=1_000_000)
    mix: SampleMix = SampleMix()


class LocalConfig(StrictModel):
    path: Path = Path("/dataset/Agent-FLAN/data")


class HubConfig(StrictModel):
    repo_id: str = "internlm/Agent-FLAN"
    revision: str | None = None  # a commit sha (40 hex) or tag; required for source=hub
    subdir: str = "data"


class ShareGPTTags(StrictModel):
    """LLaMA-Factory's dataset_info.json `columns` and `tags` (its defaults)."""

    messages: str = "conversations"
    system: str = "system"
    tools: str = "tools"
    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    observation_tag: str = "observation"
    function_tag: str = "function_call"
    system_tag: str = "system"


class _Source(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # folder data/raw/<name>, report rows
    weight: float = Field(1.0, ge=0)  # training copies of each record: 2 = twice, 0.5 = a seeded half
    max_records: int | None = Field(None, ge=1)  # at most this many training records (seeded pick)


class AgentFlanSource(_Source):
    kind: Literal["agent-flan"] = "agent-flan"
    origin: Literal["sample", "local", "hub"] = "sample"  # raw_data.sample / .local / .hub say the rest


class FileSource(_Source):
    kind: Literal["openai", "sharegpt"]
    path: Path  # a .jsonl file under data/sources/ (ShareGPT: also a .json list)
    heldout_path: Path | None = None  # an evaluation file of the same format: held out whole
    sharegpt: ShareGPTTags = ShareGPTTags()


Source = Annotated[AgentFlanSource | FileSource, Field(discriminator="kind")]


class Config(StrictModel):
    out: Path = Path("data/raw")
    seed: int = 0  # the draws of `weight` and `max_records`
    sources: list[Source] = [AgentFlanSource(name="agent-flan")]
    sample: SampleConfig = SampleConfig()
    local: LocalConfig = LocalConfig()
    hub: HubConfig = HubConfig()

    @model_validator(mode="after")
    def _check(self) -> Config:
        problems = []
        names = [s.name for s in self.sources]
        if not names:
            problems.append("sources: list at least one source")
        if len(set(names)) < len(names):
            problems.append(f"sources: names must be unique, got {names}")
        flan = [s for s in self.sources if isinstance(s, AgentFlanSource)]
        if len(flan) > 1:
            problems.append(
                "sources: at most one agent-flan source (its settings are raw_data.sample/local/hub)"
            )
        if any(s.origin == "hub" for s in flan):
            if not self.hub.revision:
                problems.append(
                    "origin hub needs raw_data.hub.revision (a commit sha or tag) so the data is pinned"
                )
            elif self.hub.revision in ("main", "master"):
                problems.append(
                    f"raw_data.hub.revision={self.hub.revision!r} is a branch; pin a commit sha or tag"
                )
        for i, s in enumerate(self.sources):
            if isinstance(s, FileSource):
                for key, path in (("path", s.path), ("heldout_path", s.heldout_path)):
                    if path is not None and not _inside(path, SOURCES_DIR):
                        problems.append(
                            f"sources[{i}].{key}={path}: put the file under {SOURCES_DIR}/ (dvc.yaml tracks that "
                            "folder, so editing the file reruns the pipeline)"
                        )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _inside(path: Path, folder: Path) -> bool:
    return not path.is_absolute() and path.parts[: len(folder.parts)] == folder.parts and path != folder
