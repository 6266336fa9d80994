"""A small real git + DVC project whose stages are python scripts (for the flow and deployment tests)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

DVC = [sys.executable, "-m", "dvc"]

# Stage scripts of the toy project. `train` writes one checkpoint per step into a `persist: true` output
# and resumes from the last one; with crash_once set it kills itself (SIGKILL) after step 2 once.
SCRIPTS = {
    "prepare.py": """
        import yaml, pathlib
        p = yaml.safe_load(open("params.yaml"))["prepare"]
        pathlib.Path("data.txt").write_text("x" * p["n"])
        print("prepared", p["n"])
    """,
    "train.py": """
        import os, pathlib, signal, sys, yaml
        p = yaml.safe_load(open("params.yaml"))["train"]
        if p.get("exit_code"):
            print("train: config error: train.exit_code is set", file=sys.stderr)
            sys.exit(p["exit_code"])
        ck = pathlib.Path("ckpt"); ck.mkdir(exist_ok=True)
        done = sorted(int(f.stem.split("_")[1]) for f in ck.glob("iter_*"))
        start = done[-1] if done else 0
        print("resuming from step", start, flush=True)
        with open(ck / "log.txt", "a") as log:
            log.write(f"start {start}\\n")
        for step in range(start + 1, p["steps"] + 1):
            (ck / f"iter_{step}").write_text(str(step))
            print("step", step, flush=True)
            if p.get("crash_once") and step == 2 and not pathlib.Path("crashed.flag").exists():
                pathlib.Path("crashed.flag").write_text("1")
                os.kill(os.getpid(), signal.SIGKILL)
    """,
    "evaluate.py": """
        import json, pathlib
        steps = len(list(pathlib.Path("ckpt").glob("iter_*")))
        pathlib.Path("metrics").mkdir(exist_ok=True); pathlib.Path("reports").mkdir(exist_ok=True)
        pathlib.Path("models/merged").mkdir(parents=True, exist_ok=True)
        pathlib.Path("models/merged/weights.txt").write_text(str(steps))
        doc = {"headline": ["heldout/call_em"], "models": {
            "base": {"iteration": 0, "kind": "base", "heldout": {"call_em": 0.25, "n": 4}},
            "merged": {"iteration": steps, "kind": "merged", "heldout": {"call_em": 0.75, "n": 4}}}}
        pathlib.Path("metrics/eval.json").write_text(json.dumps(doc))
        pathlib.Path("reports/eval.md").write_text("# eval\\n")
        pathlib.Path("reports/mlflow_run.json").write_text(json.dumps({"status": "disabled"}))
    """,
    "slow.py": """
        import pathlib, time
        pathlib.Path("slow.started").write_text("1")
        while pathlib.Path("slow.hold").exists():  # the lock test holds DVC's repo lock while this exists
            time.sleep(0.2)
        pathlib.Path("slow.out").write_text("done")
    """,
}


def _dvc_yaml(py: str) -> dict:
    return {
        "stages": {
            # Defined out of order on purpose: the order must come from DVC's graph, not the file.
            "evaluate": {
                "cmd": f"{py} evaluate.py",
                "deps": ["evaluate.py", "ckpt"],
                "outs": ["models/merged", "reports/eval.md"],
                "metrics": [{"metrics/eval.json": {"cache": False}}],
            },
            "prepare": {
                "cmd": f"{py} prepare.py",
                "deps": ["prepare.py"],
                "params": ["prepare"],
                "outs": ["data.txt"],
            },
            "train": {
                "cmd": f"{py} train.py",
                "deps": ["train.py", "data.txt"],
                "params": ["train"],
                "outs": [{"ckpt": {"persist": True}}],
            },
            "slow": {"cmd": f"{py} slow.py", "deps": ["slow.py", "data.txt"], "outs": ["slow.out"]},
        }
    }


def make_project(root: Path) -> Path:
    """A real git + DVC project with four trivial stages; returns its root."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*DVC, "init", "-q"], cwd=root, check=True)
    for name, body in SCRIPTS.items():
        (root / name).write_text(textwrap.dedent(body))
    (root / "params.yaml").write_text("# toy params\nprepare:\n  n: 3  # characters\ntrain:\n  steps: 4\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump(_dvc_yaml(sys.executable), sort_keys=False))
    return root
