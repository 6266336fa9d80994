"""Stage gguf: llama.cpp's converters on a tiny model with SmolLM2's tokenizer; the metadata read back;
the same prompts and greedy replies through llama.cpp as through transformers; the Ollama Modelfile's
TEMPLATE rendered by Go's text/template equal to the Jinja chat template; a tokenizer llama.cpp does not
know stops the stage naming the fix. Tests that decode need the llama.cpp runtime (`make llama-cpp`);
the conversion needs only the pinned source package (downloaded once into .cache/llama.cpp)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import FIXTURES, LLAMA_CPP_CACHE, REPO, tool_conversation
from helpers.gguf import llama_cpp_installed, needs_llama_cpp

from agentune.core.artifacts import GgufRecord
from agentune.core.errors import StageError
from agentune.core.io import sha256_file
from agentune.gguf import modelfile, release
from agentune.protocol import chat, react
from agentune.protocol.chat_template import chat_template, xtuner_template
from agentune.protocol.templates import get_template

GO_RENDERER = FIXTURES / "render_go_template.go"


@pytest.fixture(scope="module")
def decisive(tiny_smollm2, tmp_path_factory) -> Path:
    """The tiny model with its output layer scaled up: random weights, but greedy choices with wide
    margins, so f16 rounding cannot flip them and reply-for-reply parity is a fair test of the path."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("decisive") / "model"
    shutil.copytree(tiny_smollm2, out)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def converted(decisive, to_gguf) -> Path:
    return to_gguf(decisive, adapter=True, types=["f32", "f16", "q8_0"])


def read_meta(path: Path) -> dict:
    return release.read_metadata(release.converters(LLAMA_CPP_CACHE), path)


def test_files_record_and_metadata(converted):
    record = GgufRecord.read(converted)
    types = {f["type"] for f in record.files.values()}
    assert {"f32", "f16", "q8_0", "lora"} <= types
    if llama_cpp_installed():
        assert "q4_k_m" in types and not record.skipped
    else:
        assert "q4_k_m" in record.skipped and "make llama-cpp" in record.skipped["q4_k_m"]
    for name, f in record.files.items():
        assert (
            sha256_file(converted / name) == f["sha256"] and (converted / name).stat().st_size == f["bytes"]
        )
    assert record.llama_cpp == {
        "package": release.PACKAGE,
        "version": release.VERSION,
        "sha256": release.SHA256,
    }

    meta = read_meta(converted / "agentune-q8_0.gguf")
    merged_cfg = json.loads((converted.parent / "merged/tokenizer_config.json").read_text())
    assert meta["tokenizer.chat_template"] == merged_cfg["chat_template"]  # the agent's template, as trained
    assert meta["tokenizer.ggml.pre"] == "smollm" and meta["tokenizer.ggml.model"] == "gpt2"
    eot = record.eot_token_id
    assert meta["tokenizer.ggml.eot_token_id"] == eot == 2  # <|im_end|> in SmolLM2's vocabulary
    assert meta["agentune.template"] == "chatml" and meta["agentune.type"] == "q8_0"
    assert meta["agentune.checkpoint"] == "iter_1" and meta["agentune.iteration"] == 1
    assert meta["agentune.dataset_fingerprint"] == "test-fingerprint"
    assert meta["agentune.base_weights_sha256"] == "test-base"

    lora = read_meta(converted / "agentune-lora-iter_1-f16.gguf")
    assert lora["general.type"] == "adapter" and lora["adapter.type"] == "lora"
    assert lora["agentune.checkpoint"] == "iter_1"


def test_modelfile_names_the_file_the_template_and_the_stops(converted):
    text = (converted / "Modelfile").read_text()
    assert "FROM ./agentune-q8_0.gguf\n" in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0.0" in text
    assert ".Tools" not in text  # Ollama's tool parser cannot read the protocol: it is never engaged


CONVERSATIONS = [
    [{"role": "user", "content": "What is 3 + 4?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}, {"role": "user", "content": "x"},
     {"role": "assistant", "content": "y"}, {"role": "user", "content": "z"}],
    [{"role": "user", "content": "What is 3 + 4?"},
     {"role": "assistant", "content": react.format_call("Add.", "calculator", {"a": 3, "b": 4})},
     {"role": "tool", "content": "7"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"},
     {"role": "system", "content": "later system"}, {"role": "user", "content": "d {{ not a template }}"}],
]  # fmt: skip


def _lagent_conversation() -> list[dict]:
    """lagent's way: its ReAct system prompt and protocol text, as in the training data."""
    return [{k: v for k, v in m.items() if k != "loss"} for m in tool_conversation(1)["conversation"][:4]]


@pytest.mark.parametrize("index", range(len(CONVERSATIONS) + 1))
def test_ollama_template_renders_as_the_jinja_template(index, tmp_path):
    """Go's text/template (what Ollama runs) on the Modelfile's TEMPLATE gives the same text as the
    merged model's Jinja chat template, for conversations without `tools` (lagent renders them itself)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (.ci/run installs Debian's golang-go)")
    from transformers import PreTrainedTokenizerFast

    from agentune.base_model.tiny import build_tokenizer

    messages = CONVERSATIONS[index] if index < len(CONVERSATIONS) else _lagent_conversation()
    tpl = get_template("chatml")
    tok: PreTrainedTokenizerFast = build_tokenizer("chatml")
    tok.chat_template = chat_template(xtuner_template(tpl), tpl.bos, react.DEFAULT_TOOL_RESULT)
    want = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    source = modelfile.go_template("chatml", None)
    env = {"HOME": str(tmp_path), "GOCACHE": str(tmp_path / "gocache"), "GOFLAGS": "-mod=mod",
           "GOTOOLCHAIN": "local", "PATH": "/usr/bin:/bin"}  # fmt: skip
    proc = subprocess.run([go, "run", str(GO_RENDERER)], input=json.dumps({"template": source, "messages": messages}),
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == want


@needs_llama_cpp
def test_prompts_encode_to_the_same_ids(converted):
    """The GGUF's tokenizer, piece by piece as training encoded, gives the ids transformers gives."""
    from agentune.inference.generation import LocalBackend
    from agentune.inference.llama_cpp import LlamaCppBackend

    local = LocalBackend(converted.parent / "merged", get_template("chatml"), dtype="float32")
    cpp = LlamaCppBackend(converted / "agentune-f16.gguf")
    assert cpp.template.name == "chatml" and cpp.style == react.DEFAULT_TOOL_RESULT  # from the metadata
    tools = [tool_conversation(0)["conversation"][0]]
    openai = [{"role": "user", "content": "What is 3 + 4? Ünïcödé ✓ 你好\n\nTwo lines."}]
    rendered = chat.render(openai, [{"name": "calculator", "description": "Add.", "parameters": {
        "type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}}], react.DEFAULT_TOOL_RESULT)  # fmt: skip
    for messages in [*CONVERSATIONS[:3], rendered, [m for m in tools if m["role"] != "assistant"]]:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "tool"]
        if msgs[-1]["role"] == "assistant":
            msgs.append({"role": "user", "content": "next"})
        assert cpp.encode(msgs) == local.encode(msgs)


@needs_llama_cpp
@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0"])
def test_greedy_replies_match_transformers(converted, kind):
    """The parity check on the tiny model: llama.cpp's greedy replies equal transformers' on every prompt
    at f32 and f16. At q8_0 the random weights' near-ties let rounding flip a later token: the first three
    tokens agree on every prompt, whole replies on half (the demo model's q8_0 parity is measured in
    benchmarks/RESULTS.md)."""
    from agentune.inference.generation import LocalBackend
    from agentune.inference.llama_cpp import LlamaCppBackend

    prompts = [
        ([{"role": "user", "content": f"Question {i}: what is {i} + {i * 7}?"}], None) for i in range(10)
    ]
    local = LocalBackend(
        converted.parent / "merged", get_template("chatml"), max_new_tokens=24, dtype="float32"
    )
    cpp = LlamaCppBackend(converted / f"agentune-{kind}.gguf", max_new_tokens=24)
    want = [g.text for g in local.generate(prompts)]
    got = [g.text for g in cpp.generate(prompts)]
    pairs = list(zip(want, got, strict=True))
    same = sum(a == b for a, b in pairs) / len(pairs)
    assert same >= (0.5 if kind == "q8_0" else 1.0), pairs
    head = lambda text: local.tokenizer.encode(text, add_special_tokens=False)[:3]  # noqa: E731
    assert all(head(a) == head(b) for a, b in pairs), pairs


def test_a_tokenizer_llama_cpp_does_not_know_stops_the_stage(tiny_base, to_gguf):
    """The byte-level tiny tokenizer has no llama.cpp pre-tokenizer: the stage fails, saying so."""
    with pytest.raises(StageError) as err:
        to_gguf(tiny_base, types=["f16"], quantize=[], lora=False, ollama={"gguf": "f16"})
    assert "convert_hf_to_gguf.py failed" in str(err.value) and "pre-tokenizer" in str(err.value)


def test_the_pin_matches_the_runtime_requirement():
    """`make llama-cpp` builds the runtime from the source package the converters come from."""
    text = (REPO / "requirements-llama-cpp.txt").read_text()
    assert f"{release.PACKAGE}=={release.VERSION}" in text and f"--hash=sha256:{release.SHA256}" in text


@needs_llama_cpp
def test_the_lora_gguf_on_the_base_answers_as_base_plus_adapter(converted, tmp_path):
    """`--lora`: llama.cpp's base GGUF (f32) with the adapter GGUF gives the greedy replies of the base
    with the adapter merged in by PEFT (the tiny model's random adapter moves every layer)."""
    import llama_cpp
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from agentune.inference.generation import LocalBackend

    merged_dir = converted.parent / "merged"  # the base weights, laid out as export writes them
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(merged_dir)),
                                     str(converted.parent / "adapters/iter_1"))  # fmt: skip
    with_adapter = tmp_path / "with_adapter"
    shutil.copytree(merged_dir, with_adapter)
    peft.merge_and_unload().save_pretrained(str(with_adapter), safe_serialization=True)
    local = LocalBackend(with_adapter, get_template("chatml"), max_new_tokens=16, dtype="float32")
    llm = llama_cpp.Llama(model_path=str(converted / "agentune-f32.gguf"), n_ctx=512, verbose=False,
                          lora_path=str(converted / "agentune-lora-iter_1-f16.gguf"))  # fmt: skip
    same = 0
    for i in range(6):
        messages = [{"role": "user", "content": f"Question {i}: what is {i} * 3?"}]
        ids = local.encode(messages)
        want = local.generate([(messages, None)])[0].text
        got = []
        for tok in llm.generate(ids, temp=0.0, reset=True):
            if tok in local.stop_ids or len(got) == 16:
                break
            got.append(tok)
        same += local.tokenizer.decode(got) == want
    assert same >= 5
