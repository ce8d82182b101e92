"""The OpenAPI 3.1 document describes every public route of the app, and nothing that is not one."""

from __future__ import annotations

from profile_service.app import create_app
from profile_service.config import Settings
from profile_service.openapi import document

SETTINGS = Settings.from_env({"DATABASE_URL": "postgresql://unused", "AMQP_URL": "amqp://unused",
                              "SERVICE_AUTH_KEY": "unused"})


def _app_routes() -> set[tuple[str, str]]:
    app = create_app(SETTINGS)  # builds routes only; nothing connects before startup
    return {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
            if r.method != "HEAD" and r.resource is not None and not r.resource.canonical.startswith("/internal/")}


def test_every_route_is_documented_and_every_documented_operation_exists() -> None:
    documented = {(method, path) for path, item in document()["paths"].items() for method in item}
    assert _app_routes() == documented


def test_document_is_openapi_31_with_resolvable_refs() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            return [*([node["$ref"]] if "$ref" in node else []), *(r for v in node.values() for r in refs(v))]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for target in refs(doc):
        section, name = target.removeprefix("#/components/").split("/")
        assert name in doc["components"][section], target
    assert {"Profile", "User", "SessionInfo", "Problem"} <= set(schemas)
