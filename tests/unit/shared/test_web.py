"""The shared middlewares: problem+json for every error, no stack traces, request ids, JSON bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from portal_shared.problems import Problem
from portal_shared.web import MAX_JSON_DEPTH, base_app, json_response, read_json, require_body


def make_app() -> web.Application:
    app = base_app()

    async def echo(request: web.Request) -> web.Response:
        return json_response(await read_json(request))

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    async def invalid(_: web.Request) -> web.Response:
        raise Problem(422, "Name is required.", kind="validation-failed", errors={"name": ["Name is required."]})

    async def db_down(_: web.Request) -> web.Response:
        raise asyncpg.exceptions.CannotConnectNowError("starting up")

    async def conflict(_: web.Request) -> web.Response:
        raise Problem(409, "Already enabled.", kind="already-enabled")

    async def echo_required(request: web.Request) -> web.Response:
        return json_response(await read_json(request, required=True))

    async def patch_like(request: web.Request) -> web.Response:
        await require_body(request)
        return json_response(await read_json(request))

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/portal/profile")

    app.router.add_post("/echo", echo)
    app.router.add_put("/echo/required", echo_required)
    app.router.add_patch("/api/thing", patch_like)
    app.router.add_get("/api/thing", patch_like)
    app.router.add_get("/api/boom", boom)
    app.router.add_get("/api/invalid", invalid)
    app.router.add_get("/api/redirect", redirect)
    app.router.add_get("/internal/thing", patch_like)
    app.router.add_get("/health/ready", patch_like)
    app.router.add_get("/boom", boom)
    app.router.add_get("/invalid", invalid)
    app.router.add_get("/db", db_down)
    app.router.add_get("/conflict", conflict)
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app())) as c:
        yield c


async def test_unhandled_error_is_a_500_problem_without_internals(client: TestClient) -> None:
    response = await client.get("/boom")
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == 500 and body["detail"]
    assert "secret internals" not in await response.text()


async def test_field_errors_name_the_field(client: TestClient) -> None:
    body = await (await client.get("/invalid")).json()
    assert body["status"] == 422
    assert body["errors"] == {"name": ["Name is required."]}
    assert body["type"].endswith("validation-failed")


async def test_database_down_is_a_503_with_retry_after(client: TestClient) -> None:
    response = await client.get("/db")
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["status"] == 503


async def test_problem_kind_becomes_the_type(client: TestClient) -> None:
    body = await (await client.get("/conflict")).json()
    assert body["type"].endswith("/already-enabled") and body["status"] == 409


@pytest.mark.parametrize(("data", "headers", "status"), [
    (b"{not json", {"Content-Type": "application/json"}, 400),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400),
    (b"\x0c", {"Content-Type": "application/json"}, 400),  # whitespace alone is not a JSON text
    (b"  ", {"Content-Type": "application/json"}, 400),
    (b"name=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    (b"x" * 70_000, {"Content-Type": "application/json"}, 413),
])
async def test_bad_bodies_are_4xx_problems(client: TestClient, data: bytes, headers: dict[str, str],
                                           status: int) -> None:
    response = await client.post("/echo", data=data, headers=headers)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert (await response.json())["status"] == status


async def test_empty_body_is_an_empty_object(client: TestClient) -> None:
    response = await client.post("/echo")
    assert response.status == 200 and await response.json() == {}


async def test_unknown_route_and_method(client: TestClient) -> None:
    assert (await client.get("/nowhere")).status == 404
    response = await client.get("/echo")
    assert response.status == 405
    assert response.content_type == "application/problem+json"


def _nested(depth: int) -> bytes:
    """An object whose containers nest `depth` deep (the object itself is level 1)."""
    return b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("data", [
    b"[" * 60_000,  # nearly the 64 KB limit of "[": RecursionError in the parser, a 500 before
    b"[" * 60_000 + b"]" * 5_000,
    b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # well formed, and far too deep
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    _nested(MAX_JSON_DEPTH + 1),  # parses, but walking it recursively would be the next RecursionError
])
async def test_deeply_nested_bodies_are_400_malformed(client: TestClient, data: bytes) -> None:
    response = await client.post("/echo", data=data, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == 400 and body["type"].endswith("/malformed-body") and body["detail"] and body["title"]


async def test_nesting_up_to_the_limit_is_accepted(client: TestClient) -> None:
    response = await client.post("/echo", data=_nested(MAX_JSON_DEPTH), headers={"Content-Type": "application/json"})
    assert response.status == 200


async def test_a_required_body_may_not_be_empty(client: TestClient) -> None:
    for path, method in (("/echo/required", "PUT"), ("/api/thing", "PATCH")):
        response = await client.request(method, path)
        assert response.status == 400, path
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["status"] == 400 and body["type"].endswith("/malformed-body") and body["detail"]
        ok = await client.request(method, path, data=b"{}", headers={"Content-Type": "application/json"})
        assert ok.status == 200 and await ok.json() == {}


@pytest.mark.parametrize(("method", "path", "status"), [
    ("PATCH", "/api/thing", 200),
    ("PATCH", "/api/thing", 400),  # no body: an error answer
    ("GET", "/api/boom", 500),
    ("GET", "/api/invalid", 422),
    ("GET", "/api/nowhere", 404),
    ("DELETE", "/api/thing", 405),
    ("GET", "/api/redirect", 302),
    ("GET", "/internal/thing", 200),
])
async def test_every_api_answer_is_no_store(client: TestClient, method: str, path: str, status: int) -> None:
    data = b'{"name": "x"}' if status == 200 else None
    response = await client.request(method, path, data=data, allow_redirects=False,
                                    headers={"Content-Type": "application/json"} if data else None)
    assert response.status == status
    assert response.headers["Cache-Control"] == "no-store"


async def test_health_and_other_answers_keep_their_caching(client: TestClient) -> None:
    response = await client.get("/health/ready", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 200 and "Cache-Control" not in response.headers
