"""A tool of the sample catalogue in one place: its Python function, its JSON schema (derived from the
signature and the docstring), its request generator and its group.

    @tool("shop", order=36)
    def order_status(order_id: str, detailed: bool = False) -> str:
        '''Look up where an order is.

        Args:
            order_id: the order number
            detailed: list every parcel
        '''

    @order_status.requests
    def status_request(r: Draw) -> Task: ...   # a request this tool answers

The schema: the docstring's first paragraph is the description; each parameter's type comes from its
annotation (str string, int integer, float number, bool boolean, list[X] an array of X, dict an
object), `Literal[...]` gives an `enum`, a default other than None is written as `default`,
parameters without a default are `required`, and `Annotated[T, {...}]` adds schema keywords (a nested
object's `properties`). `order` is the tool's place in the catalogue's draw order: the generated
records depend on it.
"""

from __future__ import annotations

import functools
import inspect
import random
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


class Draw(random.Random):
    """The random source of one record; `mix` carries the sample's knobs (`spoken_share`, ...)."""

    def __init__(self, seed: Any = None, mix: Any = None):
        super().__init__(seed)
        self.mix = mix


@dataclass
class Task:
    """One request that one tool call answers."""

    tool: str
    question: str
    args: dict[str, Any]
    thought: str
    answer: Callable[[Any], str]  # the Final Answer, given the tool's result
    capability: str  # what the tool does, for "no tool can do this" answers


@dataclass
class Tool:
    """A catalogue tool: call it like its function."""

    fn: Callable[..., Any]
    name: str
    group: str
    order: int
    spec: dict[str, Any]
    request: Callable[[Draw], Task] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.fn)  # its signature, name and docstring, for clients (AutoGen)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def requests(self, generator: Callable[[Draw], Task]) -> Callable[[Draw], Task]:
        """Register the generator of requests this tool answers."""
        self.request = generator
        return generator


#: every tool defined so far (the catalogue package orders them)
DEFINED: list[Tool] = []


def tool(group: str, order: int, name: str | None = None, return_data: list[dict] | None = None):
    """Make a function a catalogue tool of `group`, listed as `name` (default: the function's name)."""

    def wrap(fn: Callable[..., Any]) -> Tool:
        spec = schema_of(fn, name or fn.__name__)
        if return_data:
            spec["return_data"] = return_data
        t = Tool(fn, spec["name"], group, order, spec)
        DEFINED.append(t)
        return t

    return wrap


def _doc(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) from a Google-style docstring."""
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    section = re.search(r"^Args:\n((?:[ \t]+.*\n?)+)", doc, re.M)
    for line in (section.group(1) if section else "").splitlines():
        m = re.match(r"\s+(\w+):\s*(.*)", line)
        if m:
            args[m.group(1)] = m.group(2).strip()
    return summary, args


def _unwrap(ann: Any) -> tuple[Any, dict[str, Any]]:
    """The annotation without `Annotated` (its dicts returned) and without `| None`."""
    extra: dict[str, Any] = {}
    if get_origin(ann) is Annotated:
        ann, *meta = get_args(ann)
        for m in meta:
            extra.update(m)
    if get_origin(ann) in (Union, types.UnionType):
        rest = [a for a in get_args(ann) if a is not type(None)]
        ann = rest[0] if len(rest) == 1 else ann
    return ann, extra


def _type_schema(ann: Any) -> dict[str, Any]:
    """`{type[, enum][, items]}` of an annotation."""
    if get_origin(ann) is Literal:
        values = list(get_args(ann))
        return {"type": _JSON_TYPES[type(values[0])], "enum": values}
    origin = get_origin(ann) or ann
    out: dict[str, Any] = {"type": _JSON_TYPES.get(origin, "string")}
    if origin is list and get_args(ann):
        out["items"] = _type_schema(_unwrap(get_args(ann)[0])[0])
    return out


def schema_of(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    """The tool spec `{name, description, parameters}` derived from `fn`'s signature and docstring."""
    summary, docs = _doc(fn)
    hints = get_type_hints(fn, include_extras=True)
    props: dict[str, Any] = {}
    required = []
    for p in inspect.signature(fn).parameters.values():
        if p.name not in docs:
            raise ValueError(
                f"tool {name!r}: parameter {p.name!r} has no description in the docstring's Args"
            )
        ann, extra = _unwrap(hints[p.name])
        typed = _type_schema(ann)
        prop: dict[str, Any] = {"type": typed["type"], "description": docs[p.name]}
        if "enum" in typed:
            prop["enum"] = typed["enum"]
        if p.default is not inspect.Parameter.empty and p.default is not None:
            prop["default"] = p.default
        if "items" in typed:
            prop["items"] = typed["items"]
        props[p.name] = {**prop, **extra}
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    return {
        "name": name,
        "description": summary,
        "parameters": {"type": "object", "properties": props, "required": required},
    }
