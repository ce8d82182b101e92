"""Answers of the real services through nginx: never cached, and bad bodies are 4xx problems, never 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.portal_client import Portal
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"
DEEP = b"[" * 60_000  # under the gateway's 64 KB body limit; Python's parser gives up at ~1,000 levels


@pytest.fixture
async def demo(portal_stack: Any) -> AsyncIterator[Portal]:
    client = Portal(portal_stack.base_url)
    await client.login("demo@client.example", DEMO_PASSWORD)
    yield client
    await client.close()


@pytest.fixture
async def admin(portal_stack: Any) -> AsyncIterator[Portal]:
    client = Portal(portal_stack.base_url)
    await client.login("admin@msp.example", DEMO_PASSWORD)
    yield client
    await client.close()


async def _raw(client: Portal, method: str, path: str, data: bytes | None,
               content_type: str | None = "application/json") -> tuple[int, str, dict[str, Any] | None, Any]:
    headers = {"Origin": client.base_url, "X-CSRF-Token": client.csrf()}
    if content_type:
        headers["Content-Type"] = content_type
    async with client.session.request(method, client.base_url + path, data=data, headers=headers) as response:
        body = await response.json(content_type=None) if response.content_type.endswith("json") else None
        return response.status, response.content_type, body, response.headers


def _assert_problem(status: int, content_type: str, body: dict[str, Any] | None, expected: int) -> None:
    assert status == expected, body
    assert content_type == PROBLEM
    assert body is not None and body["status"] == expected and body["type"] and body["title"] and body["detail"]


async def test_personal_answers_are_no_store_through_the_gateway(demo: Portal, admin: Portal,
                                                                 portal_stack: Any) -> None:
    for client, method, path in [(demo, "GET", "/api/profile"), (demo, "GET", "/api/auth/session"),
                                 (demo, "GET", "/api/auth/sessions"), (demo, "GET", "/api/mfa"),
                                 (demo, "POST", "/api/mfa/totp/setup"), (admin, "GET", "/api/admin/users"),
                                 (admin, "GET", "/api/admin/clients")]:
        status, _, response = await client.request(method, path)
        assert status == 200, (path, status)
        assert response.headers.get("Cache-Control") == "no-store", path
    anonymous = Portal(portal_stack.base_url)
    try:
        for path in ("/api/profile", "/api/auth/session"):  # errors too
            status, _, response = await anonymous.request("GET", path)
            assert status == 401 and response.headers.get("Cache-Control") == "no-store", path
    finally:
        await anonymous.close()


async def test_patch_profile_without_a_body_is_a_400(demo: Portal) -> None:
    before = (await demo.get("/api/profile"))[1]
    _assert_problem(*(await _raw(demo, "PATCH", "/api/profile", None, content_type=None))[:3], expected=400)
    _assert_problem(*(await _raw(demo, "PATCH", "/api/profile", b""))[:3], expected=400)
    status, _, body, _ = await _raw(demo, "PATCH", "/api/profile", b"{}")
    assert status == 200 and body == before  # an empty object is a body: nothing to change
    # an endpoint whose contract body is "-" still takes no body at all
    status, _, _ = await demo.request("POST", "/api/mfa/totp/setup")
    assert status == 200


async def test_every_patch_without_a_body_is_a_400(demo: Portal, admin: Portal) -> None:
    status, users = await admin.get("/api/admin/users?q=demo@client.example")
    assert status == 200 and users
    for client, path in ((admin, f"/api/admin/users/{users[0]['id']}"),
                         (demo, "/api/mfa/webauthn/00000000-0000-0000-0000-000000000000")):
        _assert_problem(*(await _raw(client, "PATCH", path, None, content_type=None))[:3], expected=400)


@pytest.mark.parametrize(("service", "method", "path"), [
    ("profile", "POST", "/api/auth/login"),
    ("profile", "PATCH", "/api/profile"),
    ("mfa", "POST", "/api/mfa/totp/verify"),
    ("mfa", "PATCH", "/api/mfa/webauthn/00000000-0000-0000-0000-000000000000"),
])
async def test_a_deeply_nested_body_is_a_400_in_every_service(demo: Portal, service: str, method: str,
                                                              path: str) -> None:
    status, content_type, body, _ = await _raw(demo, method, path, DEEP)
    _assert_problem(status, content_type, body, expected=400)
    assert body is not None and body["type"].endswith("/malformed-body"), (service, body)
