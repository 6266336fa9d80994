"""Run one of xtuner's tools (train, pth_to_hf, merge) with the CPU compatibility agentune needs.

    python -m agentune.train.xtuner_run xtuner.tools.train CONFIG [xtuner args...]
    torchrun ... -m agentune.train.xtuner_run xtuner.tools.train CONFIG --launcher pytorch

xtuner 0.2.0 assumes a GPU in a few places. Rather than editing site-packages, this wrapper patches
them in the child process before xtuner runs, and only where no CUDA device exists:
1. `torch.cpu.is_bf16_supported` does not exist in recent torch; xtuner's model build calls it.
2. mmengine's `init_dist` calls `torch.cuda.set_device(local_rank)`, which fails without CUDA: made a
   no-op so several CPU processes can train over gloo.
3. mmengine's `AmpOptimWrapper` (xtuner's mixed precision) asserts a GPU in its constructor, although
   the rest works on a CPU: its autocast is `torch.autocast("cpu", bfloat16)`, and its CUDA GradScaler
   disables itself without CUDA (bf16 needs no loss scaling). The assertion is skipped, so `train.amp:
   bfloat16` trains with CPU autocast through xtuner's own wrapper.
(4-bit quantization, the other CPU trap, is refused before launch.) Two fixes apply on every device:
4. xtuner's tokenization prepends `tokenizer.bos_token_id` to every sample and fails on `None` (a
   tokenizer without a BOS token); xtuner special-cases only Qwen's classes. No BOS token is treated
   as an empty prefix, as xtuner does for Qwen.
5. torch >= 2.6 loads with `weights_only=True` by default, which rejects the mmengine objects in
   xtuner's own training checkpoints, so resuming fails in xtuner's seed lookup and mmengine's loader.
   For files under this run's `--work-dir` only (checkpoints this run wrote), a `torch.load` that
   does not choose `weights_only` gets `weights_only=False`; every other load keeps torch's default.

Unlike the `xtuner` command, which exits 0 when the job fails, this exits with the tool's real status.
"""

from __future__ import annotations

import runpy
import sys


def apply_cpu_compat() -> None:
    """Patch the GPU assumptions above when this process has no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    if not hasattr(torch.cpu, "is_bf16_supported"):
        torch.cpu.is_bf16_supported = lambda *args, **kwargs: False
    torch.cuda.set_device = lambda *args, **kwargs: None
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper

    amp_wrapper.is_cuda_available = lambda: True  # only its constructor's GPU assertion reads it


def apply_tokenizer_compat() -> None:
    """Make xtuner's dataset encoding accept tokenizers that have no BOS token (fix 4 above)."""
    import xtuner.dataset.utils as xutils

    original = xutils.get_bos_eos_token_ids
    if getattr(original, "agentune_patched", False):
        return

    def get_bos_eos_token_ids(tokenizer):
        bos, eos = original(tokenizer)
        return ([] if bos is None else bos), eos

    get_bos_eos_token_ids.agentune_patched = True
    xutils.get_bos_eos_token_ids = get_bos_eos_token_ids


def apply_checkpoint_compat(trusted_dir: str | None) -> None:
    """Let torch.load read full mmengine checkpoints under `trusted_dir` (fix 5 above)."""
    import os

    import torch

    if not trusted_dir or getattr(torch.load, "agentune_patched", False):
        return
    root = os.path.realpath(trusted_dir)
    original = torch.load

    def load(f, *args, **kwargs):
        if "weights_only" not in kwargs and not args[1:2] and isinstance(f, (str, os.PathLike)):
            if os.path.realpath(f).startswith(root + os.sep):
                kwargs["weights_only"] = False
        return original(f, *args, **kwargs)

    load.agentune_patched = True
    torch.load = load


def _option(argv: list[str], name: str) -> str | None:
    """Value of `--name VALUE` or `--name=VALUE` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv else 2)
    module, rest = argv[0], argv[1:]
    if not module.startswith("xtuner."):
        raise SystemExit(f"agentune.train.xtuner_run: expected an xtuner tool module, got {module!r}")
    apply_cpu_compat()
    apply_tokenizer_compat()
    apply_checkpoint_compat(_option(rest, "--work-dir"))
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
