"""Validate and record an HF model directory: the `local` and `hub` sources of stage base_model.

A directory is valid when it is readable, holds config.json, tokenizer files and weights
(`*.safetensors`; pickle `.bin` only with a warning), its config and tokenizer load, and the model
builds on the meta device (no memory used). The chat template is detected from the tokenizer's special
tokens (`<|eot_id|>` -> llama3, `<|im_end|>` -> chatml) unless params name it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from tqdm import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from agentune.core.errors import StageError
from agentune.core.io import combine_hashes, read_json, sha256_file
from agentune.protocol.templates import TEMPLATES, get_template

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.txt"]


def weight_files(path: Path) -> list[Path]:
    """The weight files of a model dir: safetensors if any, else pickle .bin (with a warning)."""
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    files = sorted(path.glob("*.bin"))
    if files:
        log.warning(
            "%s: only pickle .bin weights (%s); loading them runs pickle code, prefer safetensors",
            path,
            ", ".join(f.name for f in files),
        )
    return files


def check_dir(path: Path) -> list[Path]:
    """Files present and readable; returns the weight files. StageError naming the path and the fix."""
    fix = "set base_model.local.path to an HF model directory (config.json, tokenizer, *.safetensors)"
    if not path.exists():
        raise StageError(f"{path}: model directory does not exist; {fix}")
    if not path.is_dir():
        raise StageError(f"{path}: not a directory; {fix}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StageError(f"{path}: directory is not readable (permissions); fix its permissions or {fix}")
    if not (path / "config.json").is_file():
        raise StageError(f"{path}: no config.json; {fix}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise StageError(f"{path}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); {fix}")
    weights = weight_files(path)
    if not weights:
        raise StageError(f"{path}: no weights (*.safetensors or *.bin); {fix}")
    unreadable = [p for p in [path / "config.json", *weights] if not os.access(p, os.R_OK)]
    if unreadable:
        raise StageError(f"{path}: unreadable files {[p.name for p in unreadable]}; fix their permissions")
    return weights


def detect_template(tokenizer, requested: str = "auto") -> str:
    """`llama3` or `chatml`: from params when given, else from the tokenizer's special tokens."""
    vocab = tokenizer.get_vocab()
    if requested != "auto":
        missing = [t for t in get_template(requested).special_tokens if t not in vocab]
        if missing:
            raise StageError(
                f"template {requested!r} set in params, but the tokenizer lacks its tokens {missing}; "
                "set base_model.<source>.template to the model's real template or to auto"
            )
        return requested
    if "<|eot_id|>" in vocab:
        return "llama3"
    if "<|im_end|>" in vocab:
        return "chatml"
    raise StageError(
        f"cannot detect the chat template: the tokenizer has neither <|eot_id|> nor <|im_end|>; "
        f"supported templates: {', '.join(TEMPLATES)} (set base_model.<source>.template)"
    )


def load_check(path: Path, trust_remote_code: bool = False) -> tuple[object, object, int]:
    """Load config + tokenizer and build the model on the meta device; (config, tokenizer, n_params)."""
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(
            f"{path}: does not load as an HF causal LM: {exc}. Check the files (a partial copy?); "
            "models with custom code need base_model.trust_remote_code: true"
        ) from None
    return config, tokenizer, sum(p.numel() for p in model.parameters())


def hash_weights(files: list[Path], root: Path, mode: str = "full") -> dict[str, str]:
    """sha256 per weight file (`full`, with a progress bar) or size+mtime (`quick`, for huge dirs)."""
    if mode == "quick":
        return {f.name: f"size={f.stat().st_size},mtime={int(f.stat().st_mtime)}" for f in files}
    out = {}
    total = sum(f.stat().st_size for f in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="sha256 weights", disable=total < 1 << 30) as bar:
        for f in files:
            out[f.relative_to(root).as_posix()] = sha256_file(f)
            bar.update(f.stat().st_size)
    return out


def stop_token_report(path: Path, tokenizer, template: str) -> dict:
    """Whether generation_config.json stops on every stop token of the template (export fixes it)."""
    tpl = get_template(template)
    want = [tokenizer.convert_tokens_to_ids(t) for t in tpl.stop_tokens]
    gen = path / "generation_config.json"
    eos = read_json(gen).get("eos_token_id") if gen.is_file() else None
    have = eos if isinstance(eos, list) else [eos] if eos is not None else []
    missing = [t for t, i in zip(tpl.stop_tokens, want, strict=True) if i not in have]
    if missing:
        log.warning(
            "%s: generation_config.json eos_token_id=%s does not include the %s stop tokens %s; "
            "later stages must pass them to generate (export writes a fixed generation_config.json)",
            path,
            eos,
            template,
            missing,
        )
    return {"generation_eos_token_id": eos, "missing_stop_tokens": missing}


def describe(path: Path, template: str, trust_remote_code: bool, hash_mode: str) -> dict:
    """Validate `path` and return the provenance fields shared by `local` and `hub`."""
    weights = check_dir(path)
    config, tokenizer, n_params = load_check(path, trust_remote_code)
    name = detect_template(tokenizer, template)
    if not tokenizer.chat_template:
        log.warning("%s: the tokenizer has no chat_template; agentune renders %s itself", path, name)
    files = hash_weights(weights, path, hash_mode)
    return {
        "template": name,
        "architecture": (config.architectures or [type(config).__name__])[0],
        "num_parameters": n_params,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "inputs": {
            "weights": files,
            "hash_mode": hash_mode,
            "config_sha256": sha256_file(path / "config.json"),
        },
        "weights_sha256": combine_hashes(files),
        **stop_token_report(path, tokenizer, name),
    }


def record_local(
    path: Path, out: Path, copy: bool, template: str, hash_mode: str, trust_remote_code: bool
) -> dict:
    """`local` source: validate `path`; record it (copy=False) or copy its files into `out`."""
    path = Path(path).expanduser().resolve()
    info = describe(path, template, trust_remote_code, hash_mode)
    info["version"] = str(path)
    if copy:
        for f in sorted(path.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                shutil.copy2(f, out / f.name)
        info["copied_from"] = str(path)
    else:
        info["path"] = str(path)
    return info


def download_hub(repo_id: str, revision: str, out: Path, template: str, trust_remote_code: bool) -> dict:
    """`hub` source: snapshot_download a pinned revision into `out` (token from HF_TOKEN only)."""
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        log.warning("base_model.hub.revision=%r is not a commit id: the download is not pinned", revision)
    fix = (
        "download the model elsewhere and use `base_model.source: local` with "
        "`base_model.local.path: /path/to/model`"
    )
    try:
        snapshot_download(
            repo_id,
            revision=revision,
            local_dir=out,
            token=os.environ.get("HF_TOKEN") or None,
            allow_patterns=HUB_PATTERNS,
        )
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError) as exc:
        raise StageError(
            f"cannot reach the Hugging Face Hub for {repo_id}@{revision} ({exc}); {fix}"
        ) from None
    except HfHubHTTPError as exc:
        raise StageError(
            f"the Hugging Face Hub refused {repo_id}@{revision} ({exc}); gated models need HF_TOKEN set "
            f"in the environment and the licence accepted; or {fix}"
        ) from None
    shutil.rmtree(out / ".cache", ignore_errors=True)
    info = describe(out, template, trust_remote_code, "full")
    info["version"] = f"{repo_id}@{revision}"
    return info
