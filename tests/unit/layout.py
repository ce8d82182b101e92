"""Reading a service package's shape from its source: its modules, their imports, an import cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

DB_CALLS = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany", "copy_records_to_table"})


def package_dir(package: str) -> Path:
    return Path(importlib.import_module(package).__file__ or "").resolve().parent


def modules(package: str) -> dict[str, ast.Module]:
    root = package_dir(package)
    found = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join((package, *path.relative_to(root).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), filename=str(path))
    return found


def imports(tree: ast.Module, package: str) -> set[str]:
    """Every module of `package` this one imports, TYPE_CHECKING blocks included (a cycle hidden there is one)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == package}


def graph(package: str) -> dict[str, set[str]]:
    found = modules(package)
    return {name: {n for n in imports(tree, package) if n in found and n != name} for name, tree in found.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def db_calls(tree: ast.Module) -> list[str]:
    """The asyncpg query calls (`.fetch(...)`, `.execute(...)`, …) a module makes itself."""
    return [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr in DB_CALLS]
