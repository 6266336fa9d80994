"""lagent 0.2.4's own protocol code, read from the pinned wheel (`pip download --no-deps`, sha256-checked).

lagent's package imports jupyter, streamlit and more at import time, so it is not installed: the two
modules the tests need (`agents/react.py`: the template and `ReActProtocol.parse`; `actions/parser.py`:
`JsonParser`) are executed from the wheel's source with the lagent modules they import stubbed out. The
code that runs is lagent's, unchanged.
"""

from __future__ import annotations

import sys
import types
import zipfile
from functools import cache
from pathlib import Path

from helpers import REPO

PACKAGE, VERSION = "lagent", "0.2.4"
SHA256 = "0072b27b4d0aca950e15e1671c3068a258d627ca0c63e8f1049dc0957ef8df0e"
CACHE = REPO / ".cache" / "agentune" / "wheels"


@cache
def wheel() -> Path:
    from agentune.core.wheels import fetch_wheel

    return fetch_wheel(PACKAGE, VERSION, SHA256, CACHE, "tests/helpers/lagent.py SHA256")


def source(member: str) -> str:
    with zipfile.ZipFile(wheel()) as zf:
        return zf.read(f"lagent/{member}").decode("utf-8")


def _module(name: str, member: str, **stubs: object) -> types.ModuleType:
    """Execute `lagent/<member>` as module `name`, its lagent imports served by stub modules."""
    saved = {k: v for k, v in sys.modules.items() if k == "lagent" or k.startswith("lagent.")}
    try:
        for mod, attrs in stubs.items():
            stub = types.ModuleType(mod)
            stub.__dict__.update(attrs)
            sys.modules[mod] = stub
        module = types.ModuleType(name)
        module.__package__ = name.rpartition(".")[0]
        exec(compile(source(member), f"{wheel()}!lagent/{member}", "exec"), module.__dict__)
        return module
    finally:
        for k in [k for k in sys.modules if k == "lagent" or k.startswith("lagent.")]:
            del sys.modules[k]
        sys.modules.update(saved)


class _Stub:
    def __init__(self, *args, **kwargs):
        pass


@cache
def react_module() -> types.ModuleType:
    """lagent/agents/react.py: CALL_PROTOCOL_EN and ReActProtocol."""
    return _module(
        "lagent.agents.react",
        "agents/react.py",
        **{
            "lagent": {},
            "lagent.actions": {"ActionExecutor": _Stub},
            "lagent.llms": {},
            "lagent.llms.base_api": {"BaseAPIModel": _Stub},
            "lagent.llms.base_llm": {"BaseModel": _Stub},
            "lagent.schema": {"ActionReturn": _Stub, "ActionStatusCode": _Stub, "AgentReturn": _Stub},
            "lagent.agents": {},
            "lagent.agents.base_agent": {"BaseAgent": _Stub},
        },
    )


@cache
def parser_module() -> types.ModuleType:
    """lagent/actions/parser.py: JsonParser (PARAMETER_DESCRIPTION, parse_inputs) and ParseError."""
    return _module("lagent.actions.parser", "actions/parser.py")


class _Executor:
    """What `ReActProtocol.parse` asks of lagent's ActionExecutor: the two built-in action names."""

    finish_action = types.SimpleNamespace(name="FinishAction")
    no_action = types.SimpleNamespace(name="NoAction")


def lagent_parse(text: str) -> tuple[str, str, str]:
    """lagent's `ReActProtocol().parse(text, executor)`: (thought, action, action_input)."""
    return react_module().ReActProtocol().parse(text, _Executor())


def lagent_json_args(action_input: str, keys: list[str]) -> dict | None:
    """lagent's `JsonParser.parse_inputs` for a tool whose parameters are `keys` (None: ParseError)."""
    mod = parser_module()
    tool = types.SimpleNamespace(
        name="tool",
        is_toolkit=False,
        description={"name": "tool", "parameters": [{"name": k} for k in keys], "required": []},
    )
    try:
        return mod.JsonParser(tool).parse_inputs(action_input)
    except mod.ParseError:
        return None


def assert_parse_agrees(text: str) -> None:
    """Our parse reads what lagent's `ReActProtocol.parse` reads, and our JSON check is lagent's JsonParser."""
    thought, action, action_input = lagent_parse(text)
    from agentune.protocol import react

    ours = react.parse_reply(text)
    if action == "FinishAction":
        assert ours.kind == "final" and ours.final_answer == action_input.strip(), text
    elif action == "NoAction":
        assert ours.kind == "invalid" and ours.action is None, text
    else:
        assert ours.action_input == action_input, text
        assert (ours.action or "") == action, text
        assert ours.kind == ("call" if action else "invalid"), text
        keys = list(ours.args) if ours.args else []
        lagent_args = lagent_json_args(action_input, keys)
        assert ours.args == (lagent_args if isinstance(lagent_args, dict) else None), text
    assert (ours.thought or "") == thought.strip(), text
