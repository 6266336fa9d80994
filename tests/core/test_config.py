"""Config loading: every problem reported at once, overrides, unknown keys."""

from __future__ import annotations

import pytest

from agentune.base_model import Config
from agentune.cli import main
from agentune.core.config import ConfigError, apply_overrides, load_section


def test_every_problem_is_reported_at_once(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("base_model:\n  source: nope\n  colour: blue\n  tiny:\n    seed: x\n")
    with pytest.raises(ConfigError) as err:
        load_section(Config, "base_model", p)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "base_model.source = 'nope'" in msg and "'smollm2'" in msg
    assert "base_model.colour = 'blue': unknown key; allowed:" in msg and "source" in msg
    assert "base_model.tiny.seed = 'x'" in msg


def test_overrides_use_dvc_syntax():
    out = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=2e-4", "train.lora.r=8"])
    assert out == {"train": {"lr": 2e-4, "lora": {"r": 8}}}


def test_cli_config_error_exits_2(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    p.write_text("base_model:\n  source: tiny\n")
    rc = main(["base_model", "--params", str(p), "-S", "base_model.source=bogus"])
    assert rc == 2
    assert "base_model.source = 'bogus'" in capsys.readouterr().err
