"""The sample's tool catalogue: real, deterministic Python tools, each defined once (`catalogue.tool`):
its function, its JSON schema derived from the signature and docstring, its request generator and its
group, one module per domain (`travel`, `maths`, `text`, `info`, `actions`).

The sample generator (`raw_data.sample`) draws requests from the generators and calls the functions to
put true results into its trajectories; evaluation runs the same functions in its scenarios. Every
function is deterministic: "live" data (weather, stock prices, flights) is derived from a hash of the
arguments, never from the clock or the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentune.catalogue import actions, info, maths, text, travel
from agentune.catalogue.actions import PROFILE_FIELDS
from agentune.catalogue.info import ARXIV_PAPERS, EVALUATION_PAPERS, RESTAURANT_FEATURES
from agentune.catalogue.tool import DEFINED, Draw, Task, Tool

__all__ = [
    "ARXIV_PAPERS",
    "EVALUATION_PAPERS",
    "GENERATORS",
    "GROUPS",
    "PROFILE_FIELDS",
    "REGISTRY",
    "RESTAURANT_FEATURES",
    "TOOLS",
    "TOOL_NAMES",
    "Draw",
    "Task",
    "ToolRun",
    "call",
    "execute",
    "spec",
]

_MODULES = (travel, maths, text, info, actions)  # the groups' order

#: every tool, in the draw order the generated records depend on
TOOLS: tuple[Tool, ...] = tuple(sorted(DEFINED, key=lambda t: t.order))
TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS)
#: name -> (JSON-schema spec, the function)
REGISTRY: dict[str, tuple[dict[str, Any], Tool]] = {t.name: (t.spec, t) for t in TOOLS}
GENERATORS: dict[str, Callable[[Draw], Task]] = {t.name: t.request for t in TOOLS if t.request}
#: tools that could serve each other's requests, per group (a negative never offers a tool of the
#: asked group), in the order their module defines them
GROUPS: dict[str, tuple[str, ...]] = {}
for _t in DEFINED:
    GROUPS.setdefault(_t.group, ())
    GROUPS[_t.group] += (_t.name,)

assert len(GENERATORS) == len(TOOLS), "every catalogue tool needs a request generator"
assert sorted(t.order for t in TOOLS) == list(range(len(TOOLS))), "tool orders must be 0..n-1"


def spec(name: str) -> dict[str, Any]:
    """The JSON-schema spec of one tool."""
    return REGISTRY[name][0]


@dataclass(frozen=True)
class ToolRun:
    """A tool's result as the model reads it, and the exception's text when the tool raised."""

    result: Any
    error: str | None = None


def call(fn: Callable[..., Any], args: dict[str, Any]) -> ToolRun:
    """Run a tool function with keyword arguments `args`: the one tool executor (sample data and evaluation).

    A tool that raises does not stop the caller: its error comes back as text, like a real tool API."""
    try:
        return ToolRun(fn(**args))
    except Exception as exc:  # any tool failure is the call's result, never a crash
        return ToolRun(f"Error: {exc}", f"{type(exc).__name__}: {exc}")


def execute(name: str, args: dict[str, Any]) -> Any:
    """Run tool `name` with keyword arguments `args`; errors come back as text, like a real tool API."""
    if name not in REGISTRY:
        return f"Error: unknown tool {name!r}"
    return call(REGISTRY[name][1], args).result
