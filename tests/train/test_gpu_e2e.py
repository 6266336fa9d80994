"""benchmarks/gpu_e2e.py, the prepared GPU run, on a CPU: the 2-layer shape with the real profile's params
less what only CUDA runs (4-bit quantization, fp16 AMP, DeepSpeed), so that a GPU run can fail only on
what needs the GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from helpers import REPO


@pytest.mark.slow
def test_prepared_gpu_run_runs_every_step_on_the_tiny_shape(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_e2e.py"), "--tiny", "--out", str(out), "--iters", "4",
         "--heldout-n", "4", "--batches", "1,8"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    record = json.loads((out / "gpu_e2e.json").read_text())
    steps = record["steps"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert steps["install"]["status"] == "skipped"  # no --wheels: this venv's packages
    assert steps["embedded_default"]["status"] == "skipped"  # the CPU demo is the embedded default
    for name in ("model", "data", "train", "train_torchrun_zero2", "export", "evaluate_b1", "evaluate_b8"):
        assert steps[name]["status"] == "ok", (name, steps[name])
    # the train stage ran the real profile's rendered config: LoRA r 64 / alpha 16, packed 4096, acc 16
    rendered = (out / "work/models/checkpoints/xtuner_config.py").read_text()
    assert "r=64" in rendered and "lora_alpha=16" in rendered and "max_length = 4096" in rendered
    assert "accumulative_counts = 16" in rendered
    train = steps["train"]
    assert (
        train["iterations"] == 4 and train["tokens_per_s"] > 0 and train["peft_baseline"]["tokens_per_s"] > 0
    )
    assert steps["train_torchrun_zero2"]["iterations"] == 4  # through torchrun, one process
    torchrun_log = (out / "logs/train_torchrun_zero2.log").read_text()
    assert "torch.distributed.run" in torchrun_log and "--nproc_per_node=1" in torchrun_log
    for b in (1, 8):
        assert steps[f"evaluate_b{b}"]["prompts"] > 0 and steps[f"evaluate_b{b}"]["tokens_per_s"] > 0
    params = yaml.safe_load((out / "work/params.yaml").read_text())
    assert (
        params["train"]["lora"]["r"] == 64 and params["train"]["quantization"]["enabled"] is True
    )  # the profile
    assert record["device"]["device"] == "cpu" and record["versions"]["xtuner"] == "0.2.0"
