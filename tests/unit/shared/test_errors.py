"""The shared error family: each DomainError leaves the middleware as the problem+json it describes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from portal_shared.clock import iso
from portal_shared.errors import DomainError, Unavailable, ValidationFailed, domain_errors, field_error
from portal_shared.ids import is_uuid


class Teapot(DomainError):
    status, kind, detail = 418, "teapot", "Short and stout."


async def _answer(error: Exception) -> tuple[int, dict[str, str], dict[str, object]]:
    async def handler(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[domain_errors])
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        return response.status, dict(response.headers), json.loads(await response.text())


async def test_subclass_defaults_become_the_problem() -> None:
    status, headers, body = await _answer(Teapot())
    assert status == 418
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["detail"] == "Short and stout."
    assert str(body["type"]).endswith("teapot")


async def test_field_names_the_failing_field() -> None:
    status, _, body = await _answer(Teapot("Not today.", field="spout"))
    assert (status, body["detail"], body["errors"]) == (418, "Not today.", {"spout": ["Not today."]})


async def test_validation_failed_carries_every_field() -> None:
    status, _, body = await _answer(ValidationFailed({"name": ["Required."], "phone": ["Too long."]}))
    assert status == 422
    assert body["errors"] == {"name": ["Required."], "phone": ["Too long."]}
    assert body["detail"] == "Required."
    assert field_error("email", "Not an address.").errors == {"email": ["Not an address."]}


def test_validation_failed_without_a_field_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ValidationFailed({})


async def test_unavailable_says_when_to_retry() -> None:
    status, headers, _ = await _answer(Unavailable())
    assert (status, headers["Retry-After"]) == (503, "5")


def test_iso_is_utc_with_z_and_refuses_naive_moments() -> None:
    moment = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert iso(moment) == "2026-01-02T03:04:05Z"
    assert iso(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00Z"
    with pytest.raises(ValueError):
        iso(datetime(2026, 1, 2))


@pytest.mark.parametrize(("value", "ok"), [
    ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
    ("0F8FAD5B-D9CB-469F-A165-70867728950E", True),
    ("{0f8fad5b-d9cb-469f-a165-70867728950e}", False),
    ("0f8fad5bd9cb469fa16570867728950e", False),
    ("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", False),
    ("0f8fad5b-d9cb-469f-a165-70867728950e\n", False),
    (42, False),
    (None, False),
])
def test_is_uuid_takes_only_the_canonical_form(value: object, ok: bool) -> None:
    assert is_uuid(value) is ok
