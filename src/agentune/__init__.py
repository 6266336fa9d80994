"""agentune: fine-tune an open LLM into a tool-calling agent, as a reproducible DVC pipeline.

Layout: one package per pipeline stage (`agentune.<stage>`: its `Config` and `run`), the shared
packages they build on (`core`, `protocol`, `inference`), and the commands (`cli`, `serve`).
"""

import logging
import warnings

__version__ = "0.1.0"

#: The pipeline's stages, in the order `dvc.yaml` defines them. Each name is also the package
#: `agentune.<name>`, the `params.yaml` section and the `agentune <name>` subcommand.
STAGES = ("base_model", "raw_data", "convert", "train", "export", "gguf", "evaluate")

# Messages from libraries that no user of agentune can act on, silenced here because every
# agentune process imports this package before them; nothing else is filtered, and errors never are.
# - DeepSpeed (installed for xtuner) calls torch.jit.script at import, which torch deprecates; accelerate
#   imports DeepSpeed whenever transformers loads a model.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


class _DropMessage(logging.Filter):
    """Drop the records of one logger whose message starts with `prefix`; every other record passes."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


# - bitsandbytes, imported through PEFT, warns on CPUs with avx512_bf16 that it could not download an
#   optional 4-bit kernel from the Hugging Face Hub (`kernels`); agentune never runs 4-bit on a CPU.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    _DropMessage("Failed to load CPU gemm_4bit_forward from kernels-community")
)
# - transformers, loading SmolLM2's tokenizer from its GGUF (base_model), explains its `legacy` default
#   and says itself that a tokenizer loaded from a GGUF file can ignore the message.
logging.getLogger("transformers.models.llama.tokenization_llama_fast").addFilter(
    _DropMessage("You are using the default legacy behaviour")
)
