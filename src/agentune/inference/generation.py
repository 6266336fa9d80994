"""Generation backends for evaluation: local transformers (batched) and an OpenAI-compatible endpoint
(llama.cpp's is `inference.llama_cpp`); each implements `Backend`.

All take chat messages (`{"role", "content"}`, tool results already as `Response:` user turns) plus the
tools offered, and return the reply text in the ReAct protocol, so one parser scores every backend.

Local prompts are built exactly as xtuner builds training samples (`openai_map_fn` turns +
`template_map_fn` strings + `encode_fn` tokenization, piece by piece, BOS once), ending with the
template's assistant header; generation is greedy and stops on the template's stop tokens.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentune.core.errors import StageError
from agentune.core.hardware import cpu_bf16
from agentune.inference.decoding import greedy_generate
from agentune.protocol import react
from agentune.protocol.chat_template import xtuner_template
from agentune.protocol.templates import ChatTemplate

log = logging.getLogger(__name__)

# xtuner's get_bos_eos_token_ids: these tokenizer classes get no BOS.
_NO_BOS_CLASSES = ("QWenTokenizer", "QWen2Tokenizer", "Qwen2TokenizerFast")


@dataclass
class Generation:
    """One reply: text (without the stop token), whether it ended on a stop token, tokens generated."""

    text: str
    stopped: bool
    n_tokens: int


#: One prompt: the chat messages and the tools offered (None: no tools).
Prompt = tuple[list[dict[str, Any]], list[dict[str, Any]] | None]


class Backend(Protocol):
    """What evaluation decodes with: one greedy reply per prompt, in order; adapters switched in place."""

    def use_adapter(self, name: str | None, adapter_dir: str | Path | None = None) -> None:
        """Decode with the adapter `name` from `adapter_dir` from now on (None: the base model alone)."""
        ...

    def generate(self, prompts: list[Prompt]) -> list[Generation]:
        """The reply to each prompt, in the prompts' order."""
        ...


def conversation_turns(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Split messages into completed turns and the open turn, as xtuner's `openai_map_fn` groups them.

    Each turn is `{system, input, output}`; the last message(s) must be user/system (the open turn).
    """
    msgs = list(messages)
    while msgs and msgs[0]["role"] == "assistant":
        msgs = msgs[1:]
    turns, system, user = [], "", ""
    for msg in msgs:
        if msg["role"] == "system":
            system = msg["content"]
        elif msg["role"] == "user":
            user += msg["content"]
        elif msg["role"] == "assistant":
            turns.append({"system": system, "input": user, "output": msg["content"]})
            system, user = "", ""
        else:
            raise StageError(f"message role {msg['role']!r}: expected system, user or assistant")
    return turns, {"system": system, "input": user}


def bos_ids(tokenizer) -> list[int]:
    """The BOS ids xtuner prepends to a sample (none for Qwen tokenizers or without a BOS token)."""
    if type(tokenizer).__name__ in _NO_BOS_CLASSES or tokenizer.bos_token_id is None:
        return []
    return [tokenizer.bos_token_id]


def encode_prompt(messages: list[dict[str, Any]], tokenizer, template: dict[str, Any]) -> list[int]:
    """Token ids of the prompt for the next assistant turn, identical to xtuner's training encoding."""
    turns, open_turn = conversation_turns(messages)
    enc = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    suffix, sep = template.get("SUFFIX") or "", template.get("SEP", "")
    eos = [tokenizer.eos_token_id] if not template.get("SUFFIX_AS_EOS", False) else []

    def instruction(turn: dict[str, str], index: int) -> str:
        text = template["INSTRUCTION"].format(input=turn["input"] or "", round=index + 1)
        if turn["system"]:
            text = template["SYSTEM"].format(system=turn["system"]) + text
        return text

    ids = list(bos_ids(tokenizer))
    for i, turn in enumerate(turns):
        ids += enc(instruction(turn, i))
        ids += enc(turn["output"] + suffix)
        if eos:
            ids += eos + bos_ids(tokenizer)
        if sep:
            ids += enc(sep)
    ids += enc(instruction(open_turn, len(turns)))
    return ids


class LocalBackend:
    """Greedy, batched generation (`agentune.inference.decoding`: KV cache, shared-prefix prefill, finished rows
    leave the batch) with a transformers model on CPU or GPU."""

    name = "local"

    def __init__(
        self,
        model_dir: str | Path,
        template: ChatTemplate,
        batch_size: int = 16,
        max_new_tokens: int = 128,
        device: str = "auto",
        dtype: str = "auto",
        tokenizer_dir: str | Path | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":  # bf16 on a GPU, and on a CPU that computes it natively
            dtype = "bfloat16" if self.device.startswith("cuda") or cpu_bf16().native else "float32"
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir or model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.template = template
        self.xt = xtuner_template(template)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.stop_ids = [self.tokenizer.convert_tokens_to_ids(t) for t in template.stop_tokens]
        self.stop_ids = [i for i in self.stop_ids if i is not None and i != self.tokenizer.unk_token_id]
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]

    # -- adapters (base loaded once; PEFT adapters switched in place) --------------------------------
    def use_adapter(self, name: str | None, adapter_dir: str | Path | None = None) -> None:
        """Switch to the LoRA adapter `name` (loading it from `adapter_dir` first), or to the base (None)."""
        from peft import PeftModel

        # The active adapter is merged into the base weights while it generates (a LoRA forward on
        # every linear layer costs ~1.6x on a CPU) and unmerged before switching: the base stays loaded
        # once, and each model is evaluated at the speed of a plain model.
        if isinstance(self.model, PeftModel) and getattr(self, "_merged", False):
            self.model.unmerge_adapter()
            self._merged = False
        if name is None:
            if isinstance(self.model, PeftModel):
                self._peft_disabled = True
            return
        self._peft_disabled = False
        if not isinstance(self.model, PeftModel):
            self.model = PeftModel.from_pretrained(self.model, str(adapter_dir), adapter_name=name)
        elif name not in self.model.peft_config:
            self.model.load_adapter(str(adapter_dir), adapter_name=name)
        self.model.set_adapter(name)
        self.model.eval()
        self.model.merge_adapter()
        self._merged = True

    def encode(self, messages: list[dict[str, Any]]) -> list[int]:
        return encode_prompt(messages, self.tokenizer, self.xt)

    def generate(self, prompts: list[Prompt]) -> list[Generation]:
        """Generate a reply for each `(messages, tools)`; batches sorted by length, order kept."""
        import contextlib

        import torch
        from tqdm import tqdm

        encoded = [self.encode(messages) for messages, _ in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[Generation | None] = [None] * len(encoded)
        disabled = getattr(self, "_peft_disabled", False)
        ctx = self.model.disable_adapter() if disabled else contextlib.nullcontext()
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with ctx, torch.inference_mode():
            for batch in tqdm(batches, desc="generate", unit="batch", leave=False, disable=len(batches) < 2):
                new_ids = greedy_generate(
                    self.model,
                    [encoded[i] for i in batch],
                    self.stop_ids,
                    self.pad_id,
                    self.max_new_tokens,
                    self.device,
                )
                for i, ids in zip(batch, new_ids, strict=True):
                    results[i] = self._decode(ids)
        return results  # type: ignore[return-value]

    def _decode(self, new_ids: list[int]) -> Generation:
        stop_at = next((k for k, t in enumerate(new_ids) if t in self.stop_ids), None)
        kept = new_ids if stop_at is None else new_ids[:stop_at]
        text = self.tokenizer.decode(kept, skip_special_tokens=False)
        n = len(new_ids) if stop_at is None else stop_at + 1
        return Generation(text=text, stopped=stop_at is not None, n_tokens=n)


def tools_to_openai(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return [{"type": "function", "function": t} for t in tools] if tools else None


def react_to_openai_messages(
    messages: list[dict[str, Any]], style: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT
) -> list[dict[str, Any]]:
    """Protocol messages -> OpenAI tools-API messages: calls become `tool_calls`, tool results (in
    `style`) after a call become `tool` messages, the ReAct system prompt is dropped (the API carries
    the tools)."""
    out: list[dict[str, Any]] = []
    pending: str | None = None
    for k, msg in enumerate(messages):
        role, content = msg["role"], msg["content"]
        if role == "system" and react.tools_from_system(content) is not None:
            continue
        if role == "assistant":
            parsed = react.parse_reply(content)
            if parsed.kind == "call" and parsed.args is not None:
                pending = f"call_{k}"
                fn = {"name": parsed.action, "arguments": json.dumps(parsed.args)}
                out.append(
                    {
                        "role": "assistant",
                        "content": parsed.thought or "",
                        "tool_calls": [{"id": pending, "type": "function", "function": fn}],
                    }
                )
                continue
        result = style.result_of(msg) if pending else None
        if result is not None:
            out.append({"role": "tool", "tool_call_id": pending, "content": result})
            pending = None
            continue
        pending = None
        out.append({"role": role, "content": content})
    return out


def openai_reply_to_text(message: dict[str, Any]) -> str:
    """An OpenAI chat-completions `message` as protocol text (tool_calls -> Action / Action Input)."""
    calls = message.get("tool_calls") or []
    content = message.get("content") or ""
    if not calls:
        return content
    fn = calls[0].get("function", {})
    raw = fn.get("arguments", "")
    thought = content.strip().replace("\n", " ") or "call the tool"
    return f"{react.THOUGHT} {thought}\n{react.ACTION} {fn.get('name', '')}\n{react.ACTION_INPUT} {raw}"


class EndpointBackend:
    """An OpenAI-compatible chat-completions endpoint (`tool_mode: native` uses its tools API)."""

    name = "endpoint"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        tool_mode: str = "native",
        max_new_tokens: int = 128,
        timeout_s: float = 120.0,
        tool_result: react.ToolResultStyle = react.DEFAULT_TOOL_RESULT,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.tool_result = tool_result  # how the prompts carry tool results (native mode maps them back)
        self.model = model
        self.tool_mode = tool_mode
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        key = os.environ.get(api_key_env) if api_key_env else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def use_adapter(self, name: str | None, adapter_dir: str | Path | None = None) -> None:
        if name is not None:
            raise StageError("the endpoint backend serves one model; it cannot switch adapters")

    def _request(self, messages: list[dict], tools: list[dict] | None) -> dict[str, Any]:
        import httpx

        body: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": self.max_new_tokens,
        }
        if self.tool_mode == "native" and tools:
            body["messages"] = react_to_openai_messages(messages, self.tool_result)
            body["tools"] = tools_to_openai(tools)
        else:
            body["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
        try:
            resp = httpx.post(self.url, json=body, headers=self.headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise StageError(f"endpoint {self.url}: request failed: {exc}; is the server running?") from exc
        if resp.status_code != 200:
            raise StageError(f"endpoint {self.url}: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def generate(self, prompts: list[Prompt]) -> list[Generation]:
        out = []
        for messages, tools in prompts:
            t0 = time.perf_counter()
            data = self._request(messages, tools)
            choice = (data.get("choices") or [{}])[0]
            text = openai_reply_to_text(choice.get("message") or {})
            usage = data.get("usage") or {}
            stopped = choice.get("finish_reason") in ("stop", "tool_calls")
            out.append(
                Generation(text=text, stopped=stopped, n_tokens=int(usage.get("completion_tokens", 0)))
            )
            log.debug("endpoint reply in %.2fs", time.perf_counter() - t0)
        return out
