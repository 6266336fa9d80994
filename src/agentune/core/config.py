"""Typed, validated configuration read from `params.yaml`.

Every stage declares a pydantic model (`Config`) for its own section. Loading validates the whole
section at once and raises `ConfigError` listing every problem: the dotted key, the value given and
what is allowed. Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

DEFAULT_PARAMS = Path("params.yaml")


class StrictModel(BaseModel):
    """Base for every config block: unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A params file that does not validate; the message lists every problem."""


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a params YAML file into a dict, with a clear error if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the repo root, or pass --params)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `section.key=value` (the `dvc exp run -S` syntax); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.max_iters=20")
    key, raw = text.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {text!r}: empty key")
    return keys, parse_value(raw)


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def parse_value(raw: str) -> Any:
    """A command-line value read as YAML, with `2e-4` read as a number (YAML 1.2, as DVC does)."""
    if not raw.strip():
        return ""
    value = yaml.safe_load(raw)
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def apply_overrides(params: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of `params` with `a.b.c=value` overrides applied."""
    out = copy.deepcopy(params)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            child = node.get(k)
            if not isinstance(child, dict):
                child = node[k] = {}
            node = child
        node[keys[-1]] = value
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed at `loc` (the parent of an unknown key), for the error message."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
        # Optional[Model] / Model | None: take the model.
        for arg in getattr(current, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def format_validation_error(section: str, model: type[BaseModel], exc: ValidationError) -> str:
    """One line per problem: `section.key = value: what is wrong / what is allowed`."""
    lines = [f"params section '{section}' has {exc.error_count()} problem(s):"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join([section, *map(str, loc)])
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            hint = f"unknown key; allowed: {', '.join(allowed)}" if allowed else "unknown key"
            lines.append(f"  - {dotted} = {value!r}: {hint}")
        elif err["type"] == "missing":
            lines.append(f"  - {dotted}: required key is missing")
        else:
            lines.append(f"  - {dotted} = {value!r}: {err['msg']}")
    return "\n".join(lines)


def validate_section(model: type[M], section: str, data: Any) -> M:
    """Validate one section's dict against its model, raising `ConfigError` with every problem."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(section, model, exc)) from None


def load_section(
    model: type[M],
    section: str,
    params_path: str | Path = DEFAULT_PARAMS,
    overrides: list[str] | tuple[str, ...] = (),
) -> M:
    """Read `params_path`, apply overrides and validate `section` against `model`."""
    params = apply_overrides(read_params(params_path), overrides)
    if section not in params:
        raise ConfigError(f"{params_path}: section '{section}' is missing")
    return validate_section(model, section, params[section])
