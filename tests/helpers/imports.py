"""The import graph of `src/agentune`, read from the source (every import statement, inside functions too).

Used by the layout tests: a stage's code lineage in `dvc.yaml` must be exactly the files its package
imports, stages never import each other, and nothing imports in a cycle.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from helpers import REPO

SRC = REPO / "src"
PACKAGE = "agentune"


def module_file(module: str) -> Path | None:
    """The source file of a dotted module name inside `src/` (a package's `__init__.py`), or None."""
    base = SRC.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def all_modules() -> list[str]:
    return sorted(module_name(p) for p in (SRC / PACKAGE).rglob("*.py"))


@cache
def imports_of(module: str) -> frozenset[str]:
    """Modules of the package that `module` imports anywhere in its body (resolved to real modules)."""
    path = module_file(module)
    assert path is not None, module
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import submodule` imports the submodule; `from pkg import name` the package
            names = [f"{base}.{a.name}" if module_file(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                # `import a.b.c` loads a, a.b and a.b.c: keep the deepest real module
                while name and module_file(name) is None:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    found.add(name)
    return frozenset(found)


def parents(module: str) -> list[str]:
    """The packages Python runs before `module` (`a`, `a.b` for `a.b.c`)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(roots: list[str]) -> set[Path]:
    """Every source file that runs when `roots` are imported: their imports, transitively, and the
    `__init__.py` of every package on the way."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [*imports_of(m), *parents(m)]
    return {module_file(m) for m in seen}


def package_modules(package: str) -> list[str]:
    return [m for m in all_modules() if m == package or m.startswith(package + ".")]


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    graph = {m: sorted(imports_of(m)) for m in all_modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in graph:
        if m not in index:
            visit(m)
    return out


def compact_deps(files: set[Path], repo: Path) -> list[str]:
    """Files as `dvc.yaml` deps: a folder where every .py file below it is in `files`, else the files."""
    out: set[Path] = set()
    for f in files:
        top = f
        for folder in f.parents:  # innermost first; never src/agentune itself
            if SRC / PACKAGE not in folder.parents or not all(p in files for p in folder.rglob("*.py")):
                break
            top = folder
        out.add(top)
    return sorted(p.relative_to(repo).as_posix() for p in out)


def expand_deps(deps: list[str], repo: Path) -> set[Path]:
    """`dvc.yaml` code deps back to the .py files they cover."""
    files: set[Path] = set()
    for d in deps:
        path = repo / d
        files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return files
