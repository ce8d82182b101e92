"""One skeleton for the three services (issue #17 item 3), read from their source: SQL only in a
`repository/` package, handlers in `handlers_*.py` reaching repositories only through a service, consumers
in `consumers.py`, migrations listed in `app.py`, no import cycle, small modules."""

from __future__ import annotations

import ast
import importlib

import pytest

from tests.unit.layout import cycle, db_calls, graph, modules, package_dir

PACKAGES = ["profile_service", "mfa_service", "notifier_service"]


def test_the_cycle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_sql_finder_finds_a_query() -> None:
    assert db_calls(ast.parse("async def f(c):\n    await c.fetchrow('SELECT 1')\n")) == ["fetchrow"]
    assert db_calls(ast.parse("def f(c):\n    return c.fetchrow\n")) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_sql_only_in_the_repository_package(package: str) -> None:
    found = modules(package)
    assert f"{package}.repository" in found, "no repository/ package"
    for name, tree in found.items():
        if not name.startswith(f"{package}.repository"):
            assert not db_calls(tree), f"{name} runs SQL itself: {db_calls(tree)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_handlers_call_services_not_repositories(package: str) -> None:
    for name, edges in graph(package).items():
        if name.rpartition(".")[2].startswith("handlers_"):
            assert not any(n.startswith(f"{package}.repository") for n in edges), name


@pytest.mark.parametrize("package", PACKAGES)
def test_routes_are_declared_in_handler_modules_only(package: str) -> None:
    for name, tree in modules(package).items():
        source = ast.unparse(tree)
        if name.rpartition(".")[2].startswith("handlers_"):
            assert "RouteTableDef()" in source, name
        else:
            assert "RouteTableDef" not in source, name


def _handler_types(tree: ast.Module) -> set[str]:
    """The consumer's handler types (portal_shared.consumer's EventHandler / Handler) a module imports."""
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module == "portal_shared.consumer" for alias in node.names} & {"EventHandler", "Handler"}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_bus_handlers_are_built_in_consumers_py(package: str) -> None:
    """One module per service says what it consumes: the handler table (or its builder) lives there only."""
    found = modules(package)
    assert _handler_types(found[f"{package}.consumers"])
    for name, tree in found.items():
        if name != f"{package}.consumers":
            assert not _handler_types(tree), name


@pytest.mark.parametrize("package", PACKAGES)
def test_migrations_are_listed_in_app_in_order(package: str) -> None:
    """Every SQL file of migrations/ is listed, in name order, and nothing else: a file added but not listed
    would never run."""
    listed = importlib.import_module(f"{package}.app").MIGRATIONS
    on_disk = sorted((package_dir(package) / "migrations").glob("*.sql"))
    assert list(listed) == on_disk


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package: str) -> None:
    assert cycle(graph(package)) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_over_300_lines(package: str) -> None:
    for path in package_dir(package).rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path.name
