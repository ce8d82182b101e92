"""The mfa service's shape (issue #17 items 3, 4, 6), read from its source: no import cycle, SQL only in
repository/, handlers that reach repositories only through a service, small modules, one app key."""

from __future__ import annotations

import ast
from pathlib import Path

import mfa_service

PACKAGE = Path(mfa_service.__file__).resolve().parent
_DB_CALLS = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany", "copy_records_to_table"})


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(("mfa_service", *path.relative_to(PACKAGE).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), filename=str(path))
    return found


def _imports(tree: ast.Module) -> set[str]:
    """Every mfa_service module this one imports, TYPE_CHECKING blocks included (a cycle hidden there is one)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == "mfa_service"}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {n for n in _imports(tree) if n in modules and n != name} for name, tree in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    graph = _graph()
    assert "mfa_service.keys" in graph and graph["mfa_service.identity"] >= {"mfa_service.keys"}
    assert _cycle(graph) is None


def test_principal_is_a_leaf() -> None:
    """Identity and the re-auth window: imported by services, keys and the middleware, importing none of them."""
    assert _graph()["mfa_service.principal"] <= {"mfa_service.errors"}
    assert _graph()["mfa_service.errors"] == set()


def test_services_never_reach_for_app_keys_or_the_middleware() -> None:
    graph = _graph()
    for name in ("totp", "webauthn_keys", "recovery_codes", "factors", "undo", "confirm", "state"):
        assert not graph[f"mfa_service.{name}"] & {"mfa_service.keys", "mfa_service.identity",
                                                   "mfa_service.context"}, name


def test_sql_only_in_the_repository_package() -> None:
    for name, tree in _modules().items():
        if name.startswith("mfa_service.repository"):
            continue
        calls = [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute) and node.func.attr in _DB_CALLS]
        assert not calls, f"{name} runs SQL itself: {calls}"


def test_handlers_call_services_not_repositories() -> None:
    graph = _graph()
    for name in ("mfa_service.handlers_public", "mfa_service.handlers_internal"):
        assert not any(n.startswith("mfa_service.repository") for n in graph[name]), name


def test_routes_are_declared_in_handler_modules_only() -> None:
    for name, tree in _modules().items():
        source = ast.unparse(tree)
        if not name.startswith("mfa_service.handlers_"):
            assert "router.add_" not in source and "RouteTableDef" not in source, name
        else:
            assert "RouteTableDef()" in source, name


def test_one_app_key() -> None:
    keys = ast.unparse(_modules()["mfa_service.keys"])
    assert keys.count("web.AppKey(") == 1 and "CONTEXT = web.AppKey(" in keys


def test_no_module_over_300_lines() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path.name
