"""Profiles: overlays in params/<name>.yaml (only the keys that differ) merged into params.yaml.

`agentune profile NAME` deep-merges the overlay into params.yaml with ruamel's round-trip loader, so
the comments of both files survive, validates every section of the result and only then replaces
params.yaml. `git checkout params.yaml` goes back to the embedded default.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentune.core.config import ConfigError

PROFILE_DIR = Path("params")


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def list_profiles(profile_dir: str | Path = PROFILE_DIR) -> dict[str, str]:
    """Profile name -> first comment line of its file (its one-line description)."""
    out = {}
    for path in sorted(Path(profile_dir).glob("*.yaml")):
        first = next((ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), "")
        out[path.stem] = first.lstrip("# ").strip() if first.startswith("#") else ""
    return out


def deep_merge(base: Any, overlay: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Merge mapping `overlay` into mapping `base` in place; return (dotted key, old, new) changes."""
    changes = []
    for key, new in overlay.items():
        dotted = f"{prefix}{key}"
        old = base.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += deep_merge(old, new, f"{dotted}.")
        elif old != new or key not in base:
            base[key] = new
            changes.append((dotted, old, new))
    return changes


def _load(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: not found")
    try:
        data = _yaml().load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # ruamel raises several unrelated error types
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def apply_profile(
    name: str,
    validate: Callable[[str], None],
    params_path: str | Path = "params.yaml",
    profile_dir: str | Path = PROFILE_DIR,
) -> list[tuple[str, Any, Any]]:
    """Merge params/<name>.yaml into `params_path`, validate the result, then write it atomically.

    `validate(path)` checks a params file and raises ConfigError listing every problem; the CLI passes
    `agentune.cli.validate_params` (every stage's section against its Config).
    """
    from agentune.core.io import atomic_file

    overlay_path = Path(profile_dir) / f"{name}.yaml"
    if not overlay_path.is_file():
        known = ", ".join(list_profiles(profile_dir)) or "none"
        raise ConfigError(f"{overlay_path}: no such profile; available: {known}")
    params_path = Path(params_path)
    base = _load(params_path)
    changes = deep_merge(base, _load(overlay_path))
    buf = io.StringIO()
    _yaml().dump(base, buf)
    text = buf.getvalue()
    check = params_path.with_name(f".{params_path.name}.profile-check")
    try:
        check.write_text(text, encoding="utf-8")
        validate(str(check))
    except ConfigError as exc:
        raise ConfigError(
            f"profile {name!r} gives an invalid {params_path} (left unchanged):\n{exc}"
        ) from None
    finally:
        check.unlink(missing_ok=True)
    with atomic_file(params_path) as fh:
        fh.write(text)
    return changes
