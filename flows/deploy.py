"""Serve the `agentune-pipeline` flow as a Prefect deployment: on a cron schedule and on demand.

    python flows/deploy.py                       # serve here: weekly (Mon 03:00 UTC) + on demand
    python flows/deploy.py --cron "0 2 * * *"    # another schedule; --no-schedule: on demand only
    prefect deployment run agentune-pipeline/agentune        # trigger a run (from another shell)
    python flows/deploy.py --work-pool gpu --source https://github.com/ORG/agentune.git \\
        --profile llama3-8b-agentflan           # register with a work pool; its workers run it

Serving runs flow runs in subprocesses of this process (it must stay up); a work-pool deployment is
picked up by `prefect worker start --pool <pool>` on the machines of that pool (e.g. GPU nodes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python flows/deploy.py`: make the `flows` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.pipeline import agentune_pipeline  # noqa: E402

DEFAULT_CRON = "0 3 * * 1"  # weekly, Monday 03:00
ENTRYPOINT = "flows/pipeline.py:agentune_pipeline"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="agentune", help="deployment name (default: %(default)s)")
    p.add_argument("--cron", default=DEFAULT_CRON, help="cron schedule (default: %(default)r, weekly)")
    p.add_argument("--timezone", default="UTC", help="time zone of the cron schedule")
    p.add_argument("--no-schedule", action="store_true", help="on demand only")
    p.add_argument("--repo", default=".", help="DVC project root the runs work in (default: %(default)s)")
    p.add_argument("--target", default=None, help="stage to reproduce (default: the whole pipeline)")
    p.add_argument("--profile", default=None, help="params profile applied before each run, e.g. tiny")
    p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--force", action="store_true", help="rerun stages even when DVC finds them up to date")
    p.add_argument("--work-pool", default=None, help="register with this work pool instead of serving here")
    p.add_argument("--source", default=None, help="with --work-pool: git URL or directory of the code")
    p.add_argument(
        "--job-variables", default=None, help="with --work-pool: JSON job variables (image, env...)"
    )
    return p


def parameters(args: argparse.Namespace) -> dict:
    """Default flow parameters of the deployment (each run may override them)."""
    params: dict = {"repo": str(Path(args.repo).resolve()) if not args.work_pool else args.repo}
    for key in ("target", "profile", "overrides", "force"):
        value = getattr(args, key)
        if value:
            params[key] = value
    return params


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from prefect.schedules import Cron

    schedule = {} if args.no_schedule else {"schedules": [Cron(args.cron, timezone=args.timezone)]}
    if args.work_pool:
        import json

        source = args.source or str(Path(__file__).resolve().parents[1])
        deployment_id = agentune_pipeline.from_source(source=source, entrypoint=ENTRYPOINT).deploy(
            name=args.name,
            work_pool_name=args.work_pool,
            parameters=parameters(args),
            job_variables=json.loads(args.job_variables) if args.job_variables else None,
            build=False,
            push=False,
            **schedule,
        )
        print(
            f"deployment agentune-pipeline/{args.name} ({deployment_id}) registered with pool {args.work_pool}"
        )
        return 0
    agentune_pipeline.serve(name=args.name, parameters=parameters(args), pause_on_shutdown=False, **schedule)
    return 0


if __name__ == "__main__":
    sys.exit(main())
