"""The house rules, checked from the source: one package per stage, code lineage in `dvc.yaml` that is
exactly each stage's import closure, stages that never import each other, no import cycles, and one
source of defaults (`params.yaml` = every stage Config's defaults)."""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from helpers.imports import (
    PACKAGE,
    SRC,
    all_modules,
    closure,
    compact_deps,
    cycles,
    expand_deps,
    imports_of,
    package_modules,
)
from pydantic import BaseModel

from agentune import STAGES

SHARED = ("core", "protocol", "inference", "catalogue", "evalsets")
#: what each shared package may import, beside itself (core is the bottom layer)
SHARED_MAY_IMPORT = {
    "core": (),
    "protocol": ("core",),
    "inference": ("core", "protocol"),
    "catalogue": (),
    "evalsets": ("core", "protocol", "catalogue"),
}


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def data_paths() -> dict[str, list[str]]:
    """Each stage's data deps and outputs as DVC resolves them (`${...}` read from params.yaml)."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return {
            stage.name: [p.def_path for p in [*stage.deps, *stage.outs] if not p.def_path.startswith("src/")]
            for stage in repo.index.stages
        }


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if d.startswith("src/")]


def top_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (SRC / PACKAGE / parts[1]).is_dir() else None


def test_every_stage_is_one_package_one_section_one_dvc_stage_one_command():
    from agentune.cli import build_parser

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    commands = build_parser()._subparsers._group_actions[0].choices  # argparse's subcommand table
    assert list(dvc_stages()) == list(STAGES)
    for name in STAGES:
        assert (SRC / PACKAGE / name / "__init__.py").is_file(), f"src/agentune/{name}/ is not a package"
        module = importlib.import_module(f"agentune.{name}")
        assert callable(module.run) and issubclass(module.Config, BaseModel)
        assert name in params, f"params.yaml has no section {name!r}"
        assert name in commands, f"`agentune {name}` is not a command"
        assert dvc_stages()[name]["cmd"] == f"agentune {name}"
        assert dvc_stages()[name]["params"] == [name]


def test_dvc_yaml_takes_every_data_path_from_the_stages_params_section():
    """Paths are set once, in params.yaml: dvc.yaml names them as `${<stage>.<key>}` of its own section."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    entry = lambda e: next(iter(e)) if isinstance(e, dict) else e  # noqa: E731  (`- path: {cache: false}`)
    for name, stage in dvc_stages().items():
        for kind in ("deps", "outs", "metrics", "plots"):
            for path in map(entry, stage.get(kind, [])):
                if path.startswith("src/") or path == "data/sources":  # code, and the user's own files
                    continue
                ref = re.fullmatch(rf"\$\{{({name}\.[\w.]+)\}}(/[\w.]+)?", path)
                assert ref, f"dvc.yaml {name}.{kind}: {path!r} is not read from params.yaml's {name} section"
                value = params
                for key in ref.group(1).split("."):
                    value = value[key]
                assert isinstance(value, str), f"{ref.group(1)} in params.yaml is not a path"


def test_cli_help_table_is_each_stage_docstring_and_imports_no_stage():
    from agentune.cli import STAGE_HELP

    assert list(STAGE_HELP) == list(STAGES)
    for name, line in STAGE_HELP.items():
        doc = ast.get_docstring(ast.parse((SRC / PACKAGE / name / "__init__.py").read_text()))
        assert doc.startswith(f"Stage {name}: {line}"), (
            f"cli.STAGE_HELP[{name!r}] is not its docstring's start"
        )
    code = (
        "import sys; from agentune.cli import build_parser; build_parser()\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[:2] in [['agentune', s] for s in {list(STAGES)!r}])\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_code_deps_are_exactly_the_stage_import_closure(stage):
    files = closure(package_modules(f"{PACKAGE}.{stage}"))
    want = compact_deps(files, REPO)
    have = code_deps(dvc_stages()[stage])
    missing = sorted(p.relative_to(REPO).as_posix() for p in files - expand_deps(have, REPO))
    extra = sorted(p.relative_to(REPO).as_posix() for p in expand_deps(have, REPO) - files)
    assert have == want, (
        f"dvc.yaml stage {stage!r}: code deps are not its import closure\n"
        f"  imported but not listed: {missing}\n  listed but not imported: {extra}\n"
        "  write them as:\n" + "".join(f"      - {d}\n" for d in want)
    )


def test_stages_import_shared_packages_never_each_other():
    problems = []
    for module in all_modules():
        own = top_package(module)
        for target in imports_of(module):
            other = top_package(target)
            if own in STAGES and other in STAGES and other != own:
                problems.append(f"stage {own}: {module} imports stage {other} ({target})")
            if own in STAGES and (other == "serve" or target == f"{PACKAGE}.cli"):
                problems.append(f"stage {own}: {module} imports the command {target}")
            if own in SHARED and other != own and other not in SHARED_MAY_IMPORT[own]:
                problems.append(f"shared {own}: {module} imports {target}")
            if own in SHARED and other is None:  # agentune.cli, agentune itself
                if target != PACKAGE:
                    problems.append(f"shared {own}: {module} imports the command module {target}")
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    found = cycles()
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_import_graph_sees_imports_inside_functions():
    """The closure is only as honest as the parser: imports inside functions count."""
    assert "agentune.train.xtuner_config" in imports_of("agentune.train")  # imported inside run's steps
    assert "agentune.inference.generation" in imports_of("agentune.evaluate")
    assert "agentune.train.xtuner_run" in imports_of("agentune.train.launcher")  # `-m` target, imported


# --------------------------------------------------------------------------------------------------
# one source of defaults


def _leaves(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Dotted keys of every field of a Config (by params.yaml name), recursing into nested models."""
    out: dict[str, object] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(_leaves(ann, key + "."))
        else:
            out[key] = field
    return out


def _yaml_leaves(data: dict, model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for k, v in data.items():
        field = model.model_fields.get(k) or next(
            (f for f in model.model_fields.values() if f.alias == k), None
        )
        ann = field.annotation if field else None
        if isinstance(v, dict) and isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= _yaml_leaves(v, ann, f"{prefix}{k}.")
        else:
            keys.add(f"{prefix}{k}")
    return keys


@pytest.mark.parametrize("stage", STAGES)
def test_params_yaml_shows_every_key_and_the_code_defaults_equal_it(stage):
    module = importlib.import_module(f"agentune.{stage}")
    section = yaml.safe_load((REPO / "params.yaml").read_text())[stage]
    code_keys = set(_leaves(module.Config))
    yaml_keys = _yaml_leaves(section, module.Config)
    assert code_keys - yaml_keys == set(), f"keys only in code, not in params.yaml [{stage}]"
    assert yaml_keys - code_keys == set(), f"keys in params.yaml that {stage}.Config does not read"
    from_yaml = module.Config.model_validate(section).model_dump(mode="json", by_alias=True)
    from_code = module.Config().model_dump(mode="json", by_alias=True)
    differ = {
        k: (from_code_v, from_yaml_v)
        for k, (from_code_v, from_yaml_v) in _flat_pairs(from_code, from_yaml).items()
        if from_code_v != from_yaml_v
    }
    assert not differ, f"{stage}: code default != params.yaml (code, yaml): {differ}"


def _flat_pairs(a: dict, b: dict, prefix: str = "") -> dict[str, tuple]:
    out = {}
    for k in a.keys() | b.keys():
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(_flat_pairs(va, vb, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = (va, vb)
    return out


# --------------------------------------------------------------------------------------------------
# lineage in a real DVC repo


def _run(cwd: Path, *cmd: str) -> str:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _changed_stages(repo: Path) -> set[str]:
    import json

    status = json.loads(_run(repo, sys.executable, "-m", "dvc", "status", "--json") or "{}")
    return {
        name
        for name, changes in status.items()
        if any("changed deps" in c for c in changes if isinstance(c, dict))
    }


@pytest.mark.slow
def test_touching_a_shared_module_marks_exactly_the_stages_that_import_it(tmp_path):
    """Real DVC: every stage committed as done, then one shared module edited at a time."""
    repo = tmp_path / "repo"
    shutil.copytree(SRC, repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    stages = dvc_stages()
    for paths in data_paths().values():  # stand-in data deps and outputs, so `dvc commit` can record them
        for p in paths:
            target = repo / p
            if target.suffix:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            else:
                target.mkdir(parents=True, exist_ok=True)
                (target / "placeholder").write_text("x")
    _run(repo, "git", "init", "-q")
    _run(repo, sys.executable, "-m", "dvc", "init", "-q")
    _run(repo, sys.executable, "-m", "dvc", "commit", "-f", "-q")
    assert _changed_stages(repo) == set()

    for shared in (
        "core/io.py",
        "core/wheels.py",
        "catalogue/info.py",
        "protocol/templates.py",
        "inference/decoding.py",
    ):
        path = repo / "src" / PACKAGE / shared
        original = path.read_text()
        path.write_text(original + "# touched\n")
        expected = {
            name
            for name in stages
            if (SRC / PACKAGE / shared) in closure(package_modules(f"{PACKAGE}.{name}"))
        }
        assert expected, shared
        assert _changed_stages(repo) == expected, f"after editing {shared}"
        path.write_text(original)
        assert _changed_stages(repo) == set()
