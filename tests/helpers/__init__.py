"""Shared test helpers (imported as `helpers`; pytest fixtures live in tests/conftest.py).

- `helpers.gguf`: the llama.cpp runtime check and the GGUF conversion behind the `to_gguf` fixture.
- `helpers.imports`: the import graph of `agentune`, for the layout tests.
- `helpers.lagent`: lagent's own parser and protocol from the pinned wheel.
- `helpers.scripted_agent`: the tiny model taught a calculator conversation.
- `helpers.sources`: users' tool-calling files (OpenAI, ShareGPT) and a raw_data + convert runner.
- `helpers.toy_dvc`: a toy DVC project for the orchestration tests.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEEL_CACHE = REPO / ".cache/agentune/wheels"  # base_model.smollm2.cache_dir, shared with the demo
LLAMA_CPP_CACHE = REPO / ".cache/llama.cpp"  # gguf.cache_dir
BFCL_CACHE = REPO / ".cache/bfcl"  # evaluate.bfcl.cache_dir: the pinned BFCL wheel, fetched once per checkout
FIXTURES = REPO / "tests/fixtures"


def tool_conversation(i: int) -> dict:
    """One short Agent-FLAN-format record: a calculator call, its result and a final answer."""
    from agentune.protocol import react

    calc = {
        "name": "calculator",
        "description": "Compute a op b.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "number"},
                "b": {"type": "number"},
                "operator": {"type": "string", "enum": ["+", "-", "*", "/"]},
            },
            "required": ["a", "b", "operator"],
        },
    }
    a, b = 3 + i, 4 + 2 * i
    return {
        "id": f"tiny-{i}",
        "conversation": [
            {"role": "system", "content": react.render_system([calc]), "loss": False},
            {"role": "user", "content": f"What is {a} + {b}?", "loss": False},
            {
                "role": "assistant",
                "content": react.format_call("Add them.", "calculator", {"a": a, "b": b, "operator": "+"}),
                "loss": True,
            },
            {"role": "user", "content": react.format_response(a + b), "loss": False},
            {"role": "assistant", "content": react.format_final("Done.", str(a + b)), "loss": True},
        ],
    }
