"""The real profile and the real mfa together (each calling the other's internal endpoints), with this
test standing in for nginx: it turns a browser's cookie into an identity through profile's
GET /internal/auth, as the gateway's auth_request does, and passes it to mfa.

Security issue #13: a factor added in one session ends the user's other sessions, the current one stays.
Also profile's POST /internal/users/{id}/sessions/end-others on its own: service auth, bad input, audit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pyotp
import pytest
from aiohttp.test_utils import TestClient
from portal_devstack.process import free_port
from portal_shared import tokens
from profile_service.bootstrap import seed_demo

from tests.support.services import running_service
from tests.support.soft_authenticator import SoftAuthenticator

PASSWORD = "Sturdy-Lantern-42"
DEMO_EMAIL = "demo@client.example"


class Browser:
    """One browser: its own cookie jar, the CSRF header on unsafe methods; /api/mfa goes through `gateway`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def cookie(self, name: str) -> str:
        return next((m.value for m in self.http.cookie_jar if m.key == name), "")

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.cookie("portal_csrf")} if method != "GET" else {}
        if path.startswith("/api/mfa"):
            status, identity = await self.gateway(method)
            if identity is None:
                return status, None
            base, headers = self.stack.mfa_url, {tokens.IDENTITY_HEADER: identity}
        else:
            base = self.stack.profile_url
        async with self.http.request(method, base + path, json=body, headers=headers) as response:
            raw = await response.read()
            return response.status, (await response.json(content_type=None) if raw else None)

    async def gateway(self, method: str) -> tuple[int, str | None]:
        """nginx's auth_request: profile answers 204 with the identity, or 401/403."""
        headers = {"Cookie": f"portal_session={self.cookie('portal_session')}",
                   "X-CSRF-Token": self.cookie("portal_csrf"), "X-Original-Method": method}
        async with aiohttp.ClientSession() as plain, plain.get(self.stack.profile_url + "/internal/auth",
                                                               headers=headers) as response:
            return response.status, response.headers.get(tokens.IDENTITY_HEADER)

    async def login(self) -> None:
        status, body = await self.call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
        assert (status, body) == (200, {"state": "signed_in"}), body


@dataclass
class Stack:
    profile: TestClient
    profile_url: str
    mfa_url: str
    env: dict[str, str]
    db: asyncpg.Connection
    demo_id: str

    def to_profile(self) -> dict[str, str]:
        return tokens.service_authorization(self.env["SERVICE_AUTH_KEY"], issuer="mfa", audience="profile")


@pytest.fixture
async def stack(stack_env: dict[str, str]) -> AsyncIterator[Stack]:
    await seed_demo(stack_env["PROFILE_DATABASE_URL"], password=PASSWORD)
    profile_port, mfa_port = free_port(), free_port()
    profile_url, mfa_url = f"http://127.0.0.1:{profile_port}", f"http://127.0.0.1:{mfa_port}"
    db = await asyncpg.connect(stack_env["ADMIN_DATABASE_URL"])
    try:
        demo_id = str(await db.fetchval("SELECT id FROM profile.users WHERE email = $1", DEMO_EMAIL))
        async with running_service("profile", stack_env, HTTP_PORT=profile_port, MFA_URL=mfa_url) as profile, \
                running_service("mfa", stack_env, HTTP_PORT=mfa_port, PROFILE_URL=profile_url):
            yield Stack(profile, profile_url, mfa_url, stack_env, db, demo_id)
    finally:
        await db.close()


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[list[Browser]]:
    opened = [Browser(stack) for _ in range(2)]
    yield opened
    for browser in opened:
        await browser.http.close()


async def test_adding_an_app_in_one_session_ends_the_other(stack: Stack, browsers: list[Browser]) -> None:
    first, second = browsers
    await first.login()
    await second.login()
    assert (await second.call("GET", "/api/profile"))[0] == 200

    status, setup = await first.call("POST", "/api/mfa/totp/setup")
    assert status == 200, setup
    assert (await second.call("GET", "/api/profile"))[0] == 200  # a pending setup changes nothing yet
    status, body = await first.call("POST", "/api/mfa/totp/verify", {"code": pyotp.TOTP(setup["secret"]).now()})
    assert status == 200 and len(body["recovery_codes"]) == 10, body

    assert (await second.call("GET", "/api/profile"))[0] == 401
    assert (await second.call("GET", "/api/mfa"))[0] == 401
    status, view = await first.call("GET", "/api/mfa")
    assert status == 200 and view["totp"]["enabled"]
    status, sessions = await first.call("GET", "/api/auth/sessions")
    assert status == 200 and [s["current"] for s in sessions] == [True]
    audit = await stack.db.fetch("SELECT type, detail FROM profile.audit_log WHERE user_id = $1 ORDER BY id",
                                 uuid.UUID(stack.demo_id))
    assert ("sessions_revoked", "two-factor changed: other sessions ended") in [tuple(r) for r in audit]


async def test_the_kept_session_survives_a_step_up(stack: Stack, browsers: list[Browser]) -> None:
    """The kept session is named by its public id, which a re-authentication (a new cookie) keeps."""
    first, second = browsers
    await first.login()
    await second.login()
    old_cookie = first.cookie("portal_session")
    assert (await first.call("POST", "/api/auth/reauth", {"password": PASSWORD}))[0] == 204
    assert first.cookie("portal_session") != old_cookie
    status, options = await first.call("POST", "/api/mfa/webauthn/register/options")
    assert status == 200, options
    credential = SoftAuthenticator().create(options)
    status, body = await first.call("POST", "/api/mfa/webauthn/register", {"credential": credential, "name": "Key"})
    assert status == 201, body
    assert (await second.call("GET", "/api/profile"))[0] == 401
    assert (await first.call("GET", "/api/profile"))[0] == 200


async def test_end_others_endpoint_needs_mfas_token_and_a_well_formed_body(stack: Stack,
                                                                             browsers: list[Browser]) -> None:
    first, second = browsers
    await first.login()
    await second.login()
    path = f"/internal/users/{stack.demo_id}/sessions/end-others"
    keep = str(await stack.db.fetchval("SELECT public_id FROM profile.sessions WHERE user_id = $1 "
                                       "ORDER BY created_at LIMIT 1", uuid.UUID(stack.demo_id)))
    assert (await stack.profile.post(path, json={"keep_session_id": keep})).status == 401
    wrong_audience = tokens.service_authorization(stack.env["SERVICE_AUTH_KEY"], issuer="mfa", audience="mfa")
    assert (await stack.profile.post(path, json={"keep_session_id": keep}, headers=wrong_audience)).status == 401
    for body in ({}, {"keep_session_id": 5}, {"keep_session_id": "not-a-uuid"}, {"keep_session_id": ["x"]}):
        response = await stack.profile.post(path, json=body, headers=stack.to_profile())
        problem = await response.json()
        assert response.status == 400 and "keep_session_id" in problem["errors"], (body, problem)
    response = await stack.profile.post("/internal/users/nope/sessions/end-others", json={"keep_session_id": None},
                                        headers=stack.to_profile())
    assert response.status == 400
    assert (await first.call("GET", "/api/profile"))[0] == 200 and (await second.call("GET", "/api/profile"))[0] == 200

    # An unknown user has no sessions: 204, nothing recorded.
    response = await stack.profile.post(f"/internal/users/{uuid.uuid4()}/sessions/end-others",
                                        json={"keep_session_id": None}, headers=stack.to_profile())
    assert response.status == 204
    response = await stack.profile.post(path, json={"keep_session_id": keep}, headers=stack.to_profile())
    assert response.status == 204
    assert (await first.call("GET", "/api/profile"))[0] == 200 and (await second.call("GET", "/api/profile"))[0] == 401
    response = await stack.profile.post(path, json={"keep_session_id": None}, headers=stack.to_profile())
    assert response.status == 204
    assert (await first.call("GET", "/api/profile"))[0] == 401
