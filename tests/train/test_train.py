"""Stage train: real xtuner runs on the tiny model (one process, two gloo processes, kill -9 + resume),
broken inputs that must fail with their cause, and the real-profile config against the reference."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from agentune import train
from agentune.core.errors import StageError
from agentune.train import inputs, launcher

# Small enough for 2 CPU cores: the tiny model, packed 2048-token samples (one tiny record is ~1,200
# byte-level tokens in lagent's prompt, so shorter samples would keep no trained token); fp32, whatever
# the CPU (the bf16 path has its own test).
TINY = dict(
    max_length=2048,
    pack_to_max_length=True,
    lr=0.01,
    warmup_ratio=0.0,
    log_interval=1,
    map_num_proc=1,
    amp="none",
)


def tiny_cfg(tmp: Path, base: Path, data: Path, **kw) -> train.Config:
    values = dict(
        TINY,
        base_model=base,
        dataset=data,
        out=tmp / "models" / "checkpoints",
        loss_curve=tmp / "metrics" / "train_loss.tsv",
        max_iters=4,
        save_steps=2,
    )
    values.update(kw)
    return train.Config(**values)


def write_params(path: Path, cfg: train.Config) -> Path:
    path.write_text(yaml.safe_dump({"train": cfg.model_dump(mode="json")}), encoding="utf-8")
    return path


def cli(params: Path, *extra: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "agentune.cli", "train", "--params", str(params), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **popen,
    )


def loss_rows(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"), strict=True)) for ln in lines[1:]]


def assert_layout(cfg: train.Config, final_iter: int, iters: list[int]) -> dict:
    """The checkpoint contract the export stage relies on."""
    out = cfg.out
    assert sorted(int(p.stem.split("_")[1]) for p in out.glob("iter_*.pth")) == iters
    assert (out / "xtuner_config.py").read_text().startswith('"""xtuner config rendered by `agentune train`')
    assert (out / "train.log").stat().st_size > 0
    record = json.loads((out / "agentune_train.json").read_text())
    assert record["status"] == "complete"
    assert record["final_iter"] == final_iter
    assert [c["iteration"] for c in record["checkpoints"]] == iters
    assert record["lora"]["r"] == cfg.lora.r
    assert record["dataset"]["fingerprint"] and record["base_model"]["weights_sha256"]
    assert Path((out / "last_checkpoint").read_text()) == out.resolve() / f"iter_{final_iter}.pth"
    assert not list(out.parent.glob(".*.partial")), "the in-progress dir must be moved into place"
    rows = loss_rows(cfg.loss_curve)
    assert [int(r["step"]) for r in rows] == list(range(1, final_iter + 1))
    return record


@pytest.mark.slow
def test_train_single_process_loss_goes_down(tmp_path, tiny_base):
    """One record repeated: loss falls; checkpoints hold optimizer + scheduler state for resume."""
    from datasets import Dataset
    from helpers import tool_conversation

    rec = tool_conversation(0)
    data = tmp_path / "one"
    Dataset.from_list([{"id": rec["id"], "messages": rec["conversation"]}]).save_to_disk(str(data))
    cfg = tiny_cfg(tmp_path, tiny_base, data, max_iters=8, save_steps=3, keep=2, pack_to_max_length=False)
    train.run(cfg)

    record = assert_layout(cfg, 8, [6, 8])  # keep=2 of iter_3, iter_6, iter_8
    losses = [float(r["loss"]) for r in loss_rows(cfg.loss_curve)]
    assert losses[-1] < losses[0] - 0.15, losses
    assert record["resumed_from_iter"] == []
    assert not list(data.glob("cache-*")), "training must not write into the (DVC-tracked) dataset"

    import torch

    ckpt = torch.load(cfg.out / "iter_8.pth", map_location="cpu", weights_only=False)
    assert ckpt["meta"]["iter"] == 8
    assert "optimizer" in ckpt and "param_schedulers" in ckpt
    assert any("lora_A" in k for k in ckpt["state_dict"])


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path, tiny_base, tiny_converted):
    cfg = tiny_cfg(tmp_path, tiny_base, tiny_converted, max_iters=14, save_steps=2)
    params = write_params(tmp_path / "params.yaml", cfg)
    work = cfg.out.parent / f".{cfg.out.name}.partial"

    proc = cli(params, start_new_session=True)
    deadline = time.time() + 300
    while not (work / "last_checkpoint").is_file():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = int(Path((work / "last_checkpoint").read_text()).stem.split("_")[1])
    assert killed_at < 14
    assert not cfg.out.exists(), "an interrupted run must not appear as a finished output"

    proc = cli(params)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert f"resumed from iter_{killed_at}.pth (iteration {killed_at})" in output
    record = assert_layout(cfg, 14, list(range(2, 15, 2)))
    assert record["resumed_from_iter"] == [killed_at]
    log = (cfg.out / "train.log").read_text()
    assert f"resumed epoch: 0, iter: {killed_at}" in log  # mmengine's own message
    assert log.count("===== agentune train") == 2  # both attempts kept in one log


@pytest.mark.slow
def test_two_process_gloo(tmp_path, tiny_base, tiny_converted):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tiny_cfg(tmp_path, tiny_base, tiny_converted, launch={"nproc_per_node": 2, "master_port": port})
    train.run(cfg)
    record = assert_layout(cfg, 4, [2, 4])
    assert record["distributed"] is True and record["world_size"] == 2
    assert "MMDistributedDataParallel" in (cfg.out / "xtuner_config.py").read_text()
    log = (cfg.out / "train.log").read_text()
    assert "Distributed launcher: pytorch" in log and "Distributed training: True" in log
    assert "GPU number: 2" in log  # mmengine's name for the world size


@pytest.mark.slow
def test_bad_lora_target_fails_with_cause(tmp_path, tiny_base, tiny_converted):
    cfg = tiny_cfg(tmp_path, tiny_base, tiny_converted, lora={"target_modules": ["no_such_proj"]})
    proc = cli(write_params(tmp_path / "params.yaml", cfg))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output
    assert "xtuner training failed" in output
    assert "no_such_proj" in output and "not found in the base model" in output
    assert not cfg.out.exists()


def test_missing_base_model_fails(tmp_path, tiny_converted):
    cfg = tiny_cfg(tmp_path, tmp_path / "nope", tiny_converted)
    with pytest.raises(StageError, match=r"nope/agentune_base.json: missing"):
        train.run(cfg)


def test_unreadable_dataset_fails(tmp_path, tiny_base):
    bad = tmp_path / "converted"
    bad.mkdir()
    (bad / "state.json").write_text("{not json")
    cfg = tiny_cfg(tmp_path, tiny_base, bad)
    with pytest.raises(StageError, match=r"converted: cannot be read as a converted dataset"):
        train.run(cfg)
    with pytest.raises(StageError, match=r"converted dataset not found"):
        train.run(tiny_cfg(tmp_path, tiny_base, tmp_path / "absent"))


def test_gpu_only_settings_rejected_on_cpu(tmp_path, tiny_base, tiny_converted):
    cfg = tiny_cfg(tmp_path, tiny_base, tiny_converted, quantization={"enabled": True}, amp="float16")
    with pytest.raises(StageError) as err:
        inputs.check_device(cfg, cuda=False)
    assert "quantization.enabled" in str(err.value) and "train.amp=float16" in str(err.value)
    inputs.check_device(cfg, cuda=True)


def test_config_rejects_bad_combinations():
    from agentune.core.config import ConfigError, validate_section

    with pytest.raises(ConfigError, match="exactly one of max_iters / max_epochs"):
        validate_section(train.Config, "train", {"max_iters": 10, "max_epochs": 1})
    with pytest.raises(ConfigError, match="launch.deepspeed"):
        validate_section(train.Config, "train", {"max_iters": 10, "launch": {"deepspeed": "zero9"}})


def test_launch_command_and_env_overrides(tmp_path, monkeypatch):
    cfg = train.Config(max_iters=1, launch={"nproc_per_node": 1, "deepspeed": "zero3_offload"})
    single, dist = launcher.xtuner_command(tmp_path / "c.py", tmp_path, launcher.resolve_launch(cfg), None)
    assert not dist and single[1:4] == ["-m", "agentune.train.xtuner_run", "xtuner.tools.train"]
    assert single[-2:] == ["--deepspeed", "deepspeed_zero3_offload"]

    for var, value in dict(
        NNODES="6", NODE_RANK="3", NPROC_PER_NODE="1", ADDR="10.0.0.1", PORT="29611"
    ).items():
        monkeypatch.setenv(var, value)
    params = launcher.resolve_launch(cfg)
    cmd, dist = launcher.xtuner_command(tmp_path / "c.py", tmp_path, params, tmp_path / "iter_5.pth")
    assert dist and cmd[1:3] == ["-m", "torch.distributed.run"]
    for arg in (
        "--nnodes=6",
        "--node_rank=3",
        "--nproc_per_node=1",
        "--master_addr=10.0.0.1",
        "--master_port=29611",
    ):
        assert arg in cmd
    assert cmd[-4:] == ["--resume", str(tmp_path / "iter_5.pth"), "--launcher", "pytorch"]

    # launcher torchrun: one process on one node through torchrun, the path of a multi-GPU launch
    for var in ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "ADDR", "PORT"):
        monkeypatch.delenv(var)
    one = train.Config(max_iters=1, launch={"launcher": "torchrun"})
    cmd, dist = launcher.xtuner_command(tmp_path / "c.py", tmp_path, launcher.resolve_launch(one), None)
    assert dist and cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=1" in cmd


def test_real_profile_renders_reference_config(tmp_path):
    """Every value of the public tutorial's QLoRA config (llama3_8b_instruct_qlora_agentflan_3e.py), read back with mmengine."""
    import torch
    from mmengine.config import Config as MMConfig

    from agentune.core.profiles import deep_merge
    from agentune.train.xtuner_config import Target, render

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deep_merge(params, yaml.safe_load((REPO / "params/llama3-8b-agentflan.yaml").read_text()))
    cfg = train.Config(**params["train"])
    target = Target(
        model_path=Path("/dataset/Meta-Llama-3-8B-Instruct"),
        dataset=Path("/data/converted"),
        xtuner_template="llama3_chat",
        cuda=True,
        amp=inputs.resolve_amp(
            cfg, cuda=True
        ),  # the profile's explicit float16, as `agentune train` resolves it
    )
    path = tmp_path / "xtuner_config.py"
    path.write_text(render(cfg, target))
    c = MMConfig.fromfile(str(path))

    llm = c.model.llm
    assert llm.pretrained_model_name_or_path == "/dataset/Meta-Llama-3-8B-Instruct"
    assert llm.torch_dtype == torch.float16
    q = llm.quantization_config
    assert (q.load_in_4bit, q.load_in_8bit, q.bnb_4bit_quant_type) == (True, False, "nf4")
    assert (q.bnb_4bit_use_double_quant, q.bnb_4bit_compute_dtype, q.llm_int8_threshold) == (
        True,
        torch.float16,
        6.0,
    )
    lora = c.model.lora
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.bias) == (64, 16, 0.1, "none")
    assert lora.target_modules is None  # xtuner: every linear layer except lm_head
    assert c.model.use_activation_checkpointing is True

    ds = c.train_dataloader.dataset
    assert "load_from_disk" in str(ds.dataset.type) and ds.dataset.dataset_path == "/data/converted"
    assert "openai_map_fn" in str(ds.dataset_map_fn)
    from xtuner.utils import PROMPT_TEMPLATE

    assert ds.template_map_fn.template == PROMPT_TEMPLATE.llama3_chat
    assert PROMPT_TEMPLATE.llama3_chat.STOP_WORDS == ["<|eot_id|>"]
    assert (ds.max_length, ds.pack_to_max_length, ds.shuffle_before_pack) == (4096, True, True)
    assert "bos_token" not in c.tokenizer  # Llama-3's tokenizer BOS is the template's
    assert (c.train_dataloader.batch_size, c.train_dataloader.num_workers) == (1, 0)

    ow = c.optim_wrapper
    assert "AmpOptimWrapper" in str(ow.type)
    assert (ow.loss_scale, ow.dtype, ow.accumulative_counts) == ("dynamic", "float16", 16)
    assert "AdamW" in str(ow.optimizer.type)
    assert (ow.optimizer.lr, tuple(ow.optimizer.betas), ow.optimizer.weight_decay) == (2e-4, (0.9, 0.999), 0)
    assert ow.clip_grad.max_norm == 1.0

    warm, cosine = c.param_scheduler
    assert "LinearLR" in str(warm.type) and "CosineAnnealingLR" in str(cosine.type)
    assert (warm.start_factor, warm.by_epoch, warm.begin, warm.convert_to_iter_based) == (1e-5, True, 0, True)
    assert warm.end == pytest.approx(0.03 * 3) and cosine.begin == pytest.approx(0.03 * 3)
    assert (cosine.eta_min, cosine.end, cosine.by_epoch) == (0.0, 3, True)
    assert c.train_cfg.max_epochs == 3 and "max_iters" not in c.train_cfg

    ck = c.default_hooks.checkpoint
    assert (ck.interval, ck.max_keep_ckpts, ck.by_epoch) == (500, 2, False)
    assert ck.save_optimizer is True  # the one deliberate change: resumable
    chat = [h for h in c.custom_hooks if "EvaluateChatHook" in str(h.type)]
    assert len(chat) == 1 and chat[0].every_n_iters == 500
    assert "ArxivSearch" in chat[0].system and chat[0].evaluation_inputs
    assert c.env_cfg.dist_cfg.backend == "nccl" and "model_wrapper_cfg" not in c


def test_bos_follows_the_chat_template(tmp_path, tiny_base):
    """xtuner prepends the tokenizer's bos_token: it must be the template's (chat_templates), not
    whatever the tokenizer file says (SmolLM2's GGUF tokenizer says <|im_start|>)."""
    from agentune.protocol.templates import get_template

    assert inputs.bos_override(tiny_base, "chatml") is None
    other = tmp_path / "tok"
    other.mkdir()
    (other / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|im_start|>"}))
    assert inputs.bos_override(other, "chatml") == (get_template("chatml").bos,)


@pytest.mark.parametrize(("iters", "ratio"), [(12, 0.1), (60, 0.05), (20, 0.0)])
def test_schedule_reaches_full_lr(tmp_path, iters, ratio):
    """The rendered LinearLR warmup + cosine, built by mmengine, reaches the configured lr and decays to
    ~0 (a 1-iteration LinearLR window would leave the whole run at start_factor x lr)."""
    import torch
    from mmengine.config import Config as MMConfig
    from mmengine.registry import PARAM_SCHEDULERS

    from agentune.train.xtuner_config import Target, render

    cfg = train.Config(max_iters=iters, warmup_ratio=ratio, lr=3e-4)
    target = Target(model_path=tmp_path, dataset=tmp_path, xtuner_template="qwen_chat", cuda=False)
    (tmp_path / "c.py").write_text(render(cfg, target))
    c = MMConfig.fromfile(str(tmp_path / "c.py"))
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheds = [PARAM_SCHEDULERS.build(dict(s, optimizer=opt)) for s in c.param_scheduler]
    lrs = []
    for _ in range(iters):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        for s in scheds:
            s.step()
    assert max(lrs) == pytest.approx(cfg.lr)
    assert lrs[-1] < 0.05 * cfg.lr


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu_through_xtuners_amp_wrapper(tmp_path, tiny_base):
    """`train.amp: bfloat16` on a CPU: xtuner's AmpOptimWrapper with CPU autocast; LoRA weights and the
    optimizer state stay fp32; the loss goes down (on a CPU without native bf16 it is emulated, slowly)."""
    from datasets import Dataset
    from helpers import tool_conversation

    rec = tool_conversation(0)
    data = tmp_path / "one"
    Dataset.from_list([{"id": rec["id"], "messages": rec["conversation"]}]).save_to_disk(str(data))
    cfg = tiny_cfg(
        tmp_path, tiny_base, data, max_iters=8, save_steps=8, pack_to_max_length=False, amp="bfloat16"
    )
    train.run(cfg)

    record = assert_layout(cfg, 8, [8])
    assert record["amp"] == "bfloat16"
    rendered = (cfg.out / "xtuner_config.py").read_text()
    assert "type=AmpOptimWrapper" in rendered and "dtype='bfloat16'" in rendered
    losses = [float(r["loss"]) for r in loss_rows(cfg.loss_curve)]
    assert losses[-1] < losses[0] - 0.15, losses

    import torch

    ckpt = torch.load(cfg.out / "iter_8.pth", map_location="cpu", weights_only=False)
    lora = [v for k, v in ckpt["state_dict"].items() if "lora_" in k]
    assert lora and all(v.dtype == torch.float32 for v in lora)
    moments = [s["exp_avg"] for s in ckpt["optimizer"]["state"].values()]
    assert moments and all(m.dtype == torch.float32 for m in moments)


def test_amp_auto_uses_bf16_only_where_the_cpu_has_it(
    tmp_path, tiny_base, tiny_converted, monkeypatch, caplog
):
    from agentune.core.hardware import Bf16Support

    cfg = tiny_cfg(tmp_path, tiny_base, tiny_converted, amp="auto")
    without = Bf16Support(False, "Test CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated")
    monkeypatch.setattr(inputs, "cpu_bf16", lambda: without)
    with caplog.at_level("INFO"):
        assert inputs.resolve_amp(cfg, cuda=False) == "none"
    assert "train.amp: auto -> fp32 (Test CPU has neither avx512_bf16 nor amx_bf16" in caplog.text
    monkeypatch.setattr(inputs, "cpu_bf16", lambda: Bf16Support(True, "Test CPU has avx512_bf16"))
    assert inputs.resolve_amp(cfg, cuda=False) == "bfloat16"
    assert (
        inputs.resolve_amp(tiny_cfg(tmp_path, tiny_base, tiny_converted, amp="float16"), cuda=True)
        == "float16"
    )


def test_bf16_weights_on_a_cpu_without_bf16_are_a_clear_error(
    tmp_path, tiny_base, tiny_converted, monkeypatch
):
    from agentune.core.hardware import Bf16Support

    monkeypatch.setattr(
        inputs, "cpu_bf16", lambda: Bf16Support(False, "Test CPU has neither avx512_bf16 nor amx_bf16")
    )
    cfg = tiny_cfg(tmp_path, tiny_base, tiny_converted, torch_dtype="bfloat16")
    with pytest.raises(StageError, match=r"train.torch_dtype=bfloat16: Test CPU has neither avx512_bf16"):
        inputs.check_device(cfg, cuda=False)
    monkeypatch.setattr(inputs, "cpu_bf16", lambda: Bf16Support(True, "Test CPU has avx512_bf16"))
    inputs.check_device(cfg, cuda=False)  # with native bf16 it is allowed


def test_cpu_flags_are_read_from_proc_cpuinfo(tmp_path):
    from agentune.core import hardware

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n")
    assert "avx512_bf16" in hardware.cpu_flags(info) and hardware.cpu_model(info) == "Test CPU"
    assert hardware.cpu_flags(tmp_path / "absent") == set()
