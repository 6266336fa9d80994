"""`agentune`: one subcommand per pipeline stage, the same commands `dvc.yaml` runs.

Each stage reads its own section of `params.yaml` (validated as a whole, every problem reported at
once). `-S section.key=value` overrides a value for one run, like `dvc exp run -S`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from agentune import STAGES, __version__
from agentune.core.config import DEFAULT_PARAMS, ConfigError, apply_overrides, read_params, validate_section
from agentune.core.errors import StageError

log = logging.getLogger("agentune")


#: `agentune --help`'s table, written out so that printing it imports no stage (tests/core/test_layout.py
#: checks each line against the start of the stage package's docstring).
STAGE_HELP: dict[str, str] = {
    "base_model": "put the base model in models/base/ (HF format, safetensors, chat template)",
    "raw_data": "gather the training sources into data/raw/<source name>/, with their provenance",
    "convert": "render every training source into the protocol: the tokenized dataset xtuner trains on",
    "train": "LoRA/QLoRA fine-tuning with xtuner, from one CPU process to many GPU nodes, resumable",
    "export": "every checkpoint -> PEFT adapter; one merged into the base -> a model that stops",
    "gguf": "the merged model as GGUF files for llama.cpp, Ollama and LM Studio, with an Ollama Modelfile",
    "evaluate": "function-calling metrics for the base model, every checkpoint adapter and the merged model",
}


def stage_module(name: str) -> ModuleType:
    """Import `agentune.<stage>` (with its libraries: only for the stage that runs or shows its help)."""
    return importlib.import_module(f"agentune.{name}")


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The command line; `stage` adds that stage's description and own options (its module is imported)."""
    parser = argparse.ArgumentParser(
        prog="agentune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agentune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for name in STAGES:
        description = STAGE_HELP[name]
        module = stage_module(name) if name == stage else None
        if module is not None:
            description = (module.__doc__ or description).strip()
        p = sub.add_parser(
            name,
            help=STAGE_HELP[name],
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_params_args(p)
        if module is not None and hasattr(module, "add_arguments"):
            module.add_arguments(p)

    sub.add_parser(
        "serve",
        help="serve a model behind an OpenAI-compatible API (`agentune serve --help`)",
        add_help=False,
    )

    p = sub.add_parser("validate", help="validate every section of params.yaml and report all problems")
    _add_params_args(p)

    p = sub.add_parser(
        "profile",
        help="apply a profile: merge params/NAME.yaml into params.yaml (git checkout params.yaml undoes it)",
    )
    p.add_argument("name", nargs="?", help="profile name, e.g. llama3-8b-agentflan or tiny")
    p.add_argument("--list", action="store_true", help="list the profiles in params/")
    p.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: %(default)s)")
    return parser


def run_profile(args: argparse.Namespace) -> int:
    """`agentune profile NAME` / `agentune profile --list`."""
    import json

    from agentune.core import profiles

    if args.list or not args.name:
        for name, summary in profiles.list_profiles().items():
            print(f"{name:24s} {summary}")
        return 0
    changes = profiles.apply_profile(args.name, validate_params, args.params)
    show = lambda v: json.dumps(v, default=str)  # noqa: E731  (ruamel maps print as plain JSON)
    for key, old, new in changes:
        print(f"  {key}: {show(old)} -> {show(new)}")
    print(f"{args.params}: profile {args.name!r} applied ({len(changes)} change(s)); all sections valid.")
    print(f"Go back to the default with `git checkout {args.params}`.")
    return 0


def _add_params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: %(default)s)")
    p.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a param for this run (value parsed as YAML); repeatable",
    )


def load_stage_config(name: str, params_path: str, overrides: list[str]):
    """Validate the `name` section of the params file (with overrides) against the stage's Config."""
    params = apply_overrides(read_params(params_path), overrides)
    if name not in params:
        raise ConfigError(f"{params_path}: section '{name}' is missing")
    return validate_section(stage_module(name).Config, name, params[name])


def validate_params(params_path: str, overrides: list[str] | tuple[str, ...] = ()) -> None:
    """Validate every stage's section; raise one ConfigError that lists the problems of all of them."""
    problems = []
    for name in STAGES:
        try:
            load_stage_config(name, params_path, overrides)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # its own options (not a stage: no params section)
        from agentune.serve import main as serve_main

        return serve_main(argv[1:])
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in STAGES else None).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        if args.command == "profile":
            return run_profile(args)
        if args.command == "validate":
            validate_params(args.params, args.overrides)
            print(f"{args.params}: all sections valid")
            return 0
        cfg = load_stage_config(args.command, args.params, args.overrides)
        module = stage_module(args.command)
        if hasattr(module, "add_arguments"):
            module.run(cfg, args)
        else:
            module.run(cfg)
        return 0
    except ConfigError as exc:
        print(f"agentune {args.command}: config error\n{exc}", file=sys.stderr)
        return 2
    except StageError as exc:
        print(f"agentune {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
