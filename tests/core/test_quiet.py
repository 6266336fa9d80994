"""A quiet demo: the library messages a user cannot act on are filtered, and nothing else is."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_deepspeeds_torch_jit_deprecation_is_filtered_and_other_warnings_are_not():
    out = run(
        "import warnings, agentune, deepspeed\n"
        "warnings.warn('`torch.jit.trace` is deprecated', FutureWarning)\n"  # a different message stays
    )
    assert "`torch.jit.script` is deprecated" not in out
    assert "`torch.jit.trace` is deprecated" in out


def test_bitsandbytes_kernels_download_warning_is_filtered_and_its_other_warnings_are_not():
    out = run(
        "import logging, agentune\n"
        "log = logging.getLogger('bitsandbytes.backends.cpu.ops')\n"
        "log.warning('Failed to load CPU gemm_4bit_forward from kernels-community: no module kernels')\n"
        "log.warning('another bitsandbytes warning')\n"
    )
    assert "kernels-community" not in out and "another bitsandbytes warning" in out


def test_transformers_gguf_tokenizer_legacy_notice_is_filtered():
    out = run(
        "import logging, agentune\n"
        "log = logging.getLogger('transformers.models.llama.tokenization_llama_fast')\n"
        "log.warning('You are using the default legacy behaviour of the <class LlamaTokenizerFast>.')\n"
        "log.warning('a different tokenizer warning')\n"
    )
    assert "legacy behaviour" not in out and "a different tokenizer warning" in out
