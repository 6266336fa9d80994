"""llama.cpp decoding of a GGUF (llama-cpp-python), for `evaluate`, `agentune serve --engine llama.cpp`
and the GGUF parity check.

Prompts are encoded exactly as for the transformers backend (`generation.encode_prompt`: xtuner's
turns, piece by piece, BOS once), with the GGUF's own tokenizer; the agent's chat template and
tool-result convention are read from the GGUF's `agentune.*` metadata (written by `agentune gguf`).
The KV cache of the previous prompt is kept: a prompt that repeats its prefix computes only what is new.
The runtime is an extra (`make llama-cpp` builds it from the source package the converters come from).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from agentune.core.errors import StageError
from agentune.inference.generation import Generation, Prompt, encode_prompt
from agentune.protocol import react
from agentune.protocol.chat_template import xtuner_template
from agentune.protocol.templates import ChatTemplate, get_template

log = logging.getLogger(__name__)


def import_llama_cpp():
    """The llama_cpp module, or a StageError that says how to install it. llama.cpp's own log (model
    loading, quantizing tensor by tensor) shows its errors only, unless agentune logs at debug level."""
    try:
        import llama_cpp
    except ImportError:
        raise StageError(
            "the llama.cpp runtime (llama-cpp-python) is not installed: `make llama-cpp` builds it "
            "(a few minutes; docs/gguf.md)"
        ) from None
    verbose = logging.getLogger("agentune").isEnabledFor(logging.DEBUG)
    logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.ERROR)
    return llama_cpp


class GgufTokenizer:
    """The GGUF's tokenizer with the methods the project's prompt encoding and decoding use."""

    def __init__(self, llm):
        self.llm = llm
        self.bos_token_id = llm.token_bos() if llm.token_bos() >= 0 else None
        self.eos_token_id = llm.token_eos()
        self.unk_token_id = None
        self.pad_token_id = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if not text:
            return []
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=True)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.llm.detokenize(list(ids), special=not skip_special_tokens).decode(
            "utf-8", errors="replace"
        )

    def convert_tokens_to_ids(self, token: str) -> int | None:
        ids = self.encode(token)
        return ids[0] if len(ids) == 1 else None


class LlamaCppBackend:
    """A GGUF decoded greedily by llama.cpp, one prompt at a time (the interface of `LocalBackend`)."""

    name = "llama.cpp"

    def __init__(
        self,
        gguf_path: str | Path,
        template: ChatTemplate | None = None,
        max_new_tokens: int = 128,
        n_ctx: int = 4096,
        n_threads: int | None = None,
    ):
        llama_cpp = import_llama_cpp()
        self.path = Path(gguf_path)
        if not self.path.is_file():
            raise StageError(f"{self.path}: no GGUF file there; run `agentune gguf` (models/gguf/)")
        # llama-cpp-python's default is half the cores; decoding is fastest on all of them
        threads = n_threads or len(os.sched_getaffinity(0))
        self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads, n_batch=512, verbose=False)  # fmt: skip
        self._lib = llama_cpp
        meta = dict(self.llm.metadata)
        self.template = template or get_template(meta.get("agentune.template") or "chatml")
        recorded = meta.get("agentune.tool_result")
        self.style = react.ToolResultStyle.load(json.loads(recorded) if recorded else None)
        self.xt = xtuner_template(self.template)
        self.tokenizer = GgufTokenizer(self.llm)
        self.model = None  # no transformers model: the engine reads `context_length`
        self.device = "cpu"
        self.context_length = self.llm.n_ctx()
        self.max_new_tokens = max_new_tokens
        stops = [self.tokenizer.convert_tokens_to_ids(t) for t in self.template.stop_tokens]
        self.stop_ids = [i for i in stops if i is not None]
        if not self.stop_ids:
            raise StageError(
                f"{self.path}: none of the {self.template.name} stop tokens is in its vocabulary"
            )
        self.pad_id = self.stop_ids[0]
        self.n_vocab = self.llm.n_vocab()

    def use_adapter(self, name: str | None, adapter_dir: str | Path | None = None) -> None:
        if name is not None:
            raise StageError("the llama.cpp backend decodes one GGUF; it cannot switch adapters")

    def encode(self, messages: list[dict[str, Any]]) -> list[int]:
        return encode_prompt(messages, self.tokenizer, self.xt)

    # -- decoding: the KV cache of the last prompt is kept and its common prefix reused ------------------
    def _logits(self) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Evaluate the prompt `ids` (reusing the cached prefix); the next token's logits."""
        if len(ids) >= self.context_length:
            raise StageError(
                f"the prompt is {len(ids)} tokens; the llama.cpp context is {self.context_length}"
            )
        cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, ids, strict=False):
            if a != b:
                break
            common += 1
        self.llm.n_tokens = min(common, len(ids) - 1)  # at least one token is evaluated: its logits
        self.llm.eval(ids[self.llm.n_tokens :])
        return self._logits()

    def step(self, token: int) -> np.ndarray:
        """Append `token`; the next token's logits."""
        self.llm.eval([token])
        return self._logits()

    def generate(self, prompts: list[Prompt]) -> list[Generation]:
        """Greedy replies to `(messages, tools)` prompts, in order."""
        from tqdm import tqdm

        out = []
        stop = set(self.stop_ids)
        for messages, _ in tqdm(prompts, desc="generate (llama.cpp)", unit="prompt", leave=False,
                                disable=len(prompts) < 8):  # fmt: skip
            ids = self.encode(messages)
            budget = min(self.max_new_tokens, self.context_length - len(ids))
            logits, new, stopped = self.prefill(ids), [], False
            while len(new) < budget:
                tok = int(logits.argmax())
                new.append(tok)
                if tok in stop:
                    stopped = True
                    break
                if len(new) < budget:
                    logits = self.step(tok)
            kept = new[:-1] if stopped else new
            out.append(Generation(self.tokenizer.decode(kept), stopped, len(new)))
        return out
