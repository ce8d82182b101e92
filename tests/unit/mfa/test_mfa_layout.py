"""The mfa service's own shape (issue #17 items 4, 5): the cycle through keys cut, identity a leaf, one app
key. What all three services share (SQL only in repository/, handlers over services, migrations listed, no
cycle, small modules) is tests/unit/test_service_layout.py."""

from __future__ import annotations

import ast

from tests.unit.layout import cycle, graph, modules

PACKAGE = "mfa_service"


def test_identity_imports_keys_and_still_no_cycle() -> None:
    edges = graph(PACKAGE)
    assert "mfa_service.keys" in edges and edges["mfa_service.identity"] >= {"mfa_service.keys"}
    assert cycle(edges) is None


def test_principal_is_a_leaf() -> None:
    """Identity and the re-auth window: imported by services, keys and the middleware, importing none of them."""
    assert graph(PACKAGE)["mfa_service.principal"] <= {"mfa_service.errors"}
    assert graph(PACKAGE)["mfa_service.errors"] == set()


def test_services_never_reach_for_app_keys_or_the_middleware() -> None:
    edges = graph(PACKAGE)
    for name in ("totp", "webauthn_keys", "recovery_codes", "factors", "undo", "confirm", "state"):
        assert not edges[f"mfa_service.{name}"] & {"mfa_service.keys", "mfa_service.identity",
                                                   "mfa_service.context"}, name


def test_one_app_key() -> None:
    keys = ast.unparse(modules(PACKAGE)["mfa_service.keys"])
    assert keys.count("web.AppKey(") == 1 and "CONTEXT = web.AppKey(" in keys
