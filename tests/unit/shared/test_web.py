"""The shared middlewares: problem+json for every error, no stack traces, request ids, JSON bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from portal_shared.problems import Problem, field_error
from portal_shared.web import base_app, json_response, read_json


def make_app() -> web.Application:
    app = base_app()

    async def echo(request: web.Request) -> web.Response:
        return json_response(await read_json(request))

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    async def invalid(_: web.Request) -> web.Response:
        raise field_error("name", "Name is required.")

    async def db_down(_: web.Request) -> web.Response:
        raise asyncpg.exceptions.CannotConnectNowError("starting up")

    async def conflict(_: web.Request) -> web.Response:
        raise Problem(409, "Already enabled.", kind="already-enabled")

    app.router.add_post("/echo", echo)
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
