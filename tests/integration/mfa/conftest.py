"""Fixtures for mfa's integration tests: the real mfa app, a stand-in profile, identity and service tokens."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from portal_shared import tokens

from tests.support.services import running_service

PASSWORD = "correct horse battery staple"


@dataclass
class StandInProfile:
    """Stands in for profile's internal endpoints that mfa calls (docs/internal-api.md).

    Same contract: service token with audience `profile`. POST /internal/verify-password: `{user_id,
    password}` in, `{ok}` out; every user's password is PASSWORD unless a test sets another in `passwords`.
    POST /internal/users/{id}/two-factor-on: records the latch in `latched` (204), or answers 503 while
    `down` is set. POST /internal/users/{id}/sessions/end-others: records `(user id, keep_session_id)` in
    `sessions_ended` (204), or answers 503 while `down` or `end_others_down` is set.
    """

    key: str
    passwords: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    latched: list[str] = field(default_factory=list)
    sessions_ended: list[tuple[str, str | None]] = field(default_factory=list)
    down: bool = False
    end_others_down: bool = False

    async def verify_password(self, request: web.Request) -> web.Response:
        try:
            tokens.verify_service_call(self.key, request.headers.get("Authorization"), audience="profile")
        except tokens.InvalidToken:
            return web.json_response({"detail": "service token required"}, status=401)
        body = await request.json()
        self.calls.append(body["user_id"])
        return web.json_response({"ok": self.passwords.get(body["user_id"], PASSWORD) == body["password"]})

    async def two_factor_on(self, request: web.Request) -> web.Response:
        try:
            tokens.verify_service_call(self.key, request.headers.get("Authorization"), audience="profile")
        except tokens.InvalidToken:
            return web.json_response({"detail": "service token required"}, status=401)
        if self.down:
            return web.json_response({"detail": "unavailable"}, status=503)
        datetime.fromisoformat((await request.json())["at"])
        self.latched.append(request.match_info["user_id"])
        return web.Response(status=204)

    async def end_other_sessions(self, request: web.Request) -> web.Response:
        try:
            tokens.verify_service_call(self.key, request.headers.get("Authorization"), audience="profile")
        except tokens.InvalidToken:
            return web.json_response({"detail": "service token required"}, status=401)
        if self.down or self.end_others_down:
            return web.json_response({"detail": "unavailable"}, status=503)
        body = await request.json()
        if "keep_session_id" not in body:
            return web.json_response({"detail": "keep_session_id is required"}, status=400)
        self.sessions_ended.append((request.match_info["user_id"], body["keep_session_id"]))
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/internal/verify-password", self.verify_password)
        app.router.add_post("/internal/users/{user_id}/two-factor-on", self.two_factor_on)
        app.router.add_post("/internal/users/{user_id}/sessions/end-others", self.end_other_sessions)
        return app


@dataclass
class Mfa:
    client: TestClient
    env: dict[str, str]
    profile: StandInProfile
    db: asyncpg.Connection

    def identity(self, user_id: str, *, email: str | None = None, imp: dict[str, Any] | None = None,
                 auth_age: int = 30, reauth_age: int | None = None, key: str | None = None,
                 purpose: str = tokens.IDENTITY, sid: Any = ...) -> dict[str, str]:
        now = int(time.time())
        payload = {"sub": user_id, "sid": session_id(user_id) if sid is ... else sid,
                   "email": email or f"{user_id[:8]}@client.example",
                   "name": "Test User", "role": "client_user", "imp": imp, "auth_at": now - auth_age,
                   "reauth_at": None if reauth_age is None else now - reauth_age}
        token = tokens.sign(key or self.env["SERVICE_AUTH_KEY"], purpose, payload, ttl_seconds=60)
        return {tokens.IDENTITY_HEADER: token}

    def service(self, audience: str = "mfa") -> dict[str, str]:
        return tokens.service_authorization(self.env["SERVICE_AUTH_KEY"], issuer="profile", audience=audience)

    async def call(self, method: str, path: str, user_id: str, body: Any = None,
                   **identity: Any) -> tuple[int, Any]:
        response = await self.client.request(method, path, json=body, headers=self.identity(user_id, **identity))
        answer = await response.json() if response.status != 204 else None
        if response.status >= 400:
            assert response.content_type == "application/problem+json", answer
            assert answer["status"] == response.status and answer["detail"]
        return response.status, answer

    async def internal(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = await self.client.request(method, path, json=body, headers=self.service())
        return response.status, (await response.json() if response.status != 204 else None)

    async def events(self, user_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Events written to mfa.outbox, oldest first (optionally only one user's)."""
        rows = await self.db.fetch("SELECT type, body FROM mfa.outbox ORDER BY created_at, id")
        found = [(r["type"], r["body"]["data"]) for r in rows]
        return [e for e in found if user_id is None or e[1].get("user_id") == user_id]

    async def enable_totp(self, user_id: str) -> tuple[str, list[str]]:
        """Set up and verify an authenticator app; returns (secret, recovery codes or [])."""
        status, setup = await self.call("POST", "/api/mfa/totp/setup", user_id)
        assert status == 200, setup
        secret = setup["secret"]
        status, body = await self.call("POST", "/api/mfa/totp/verify", user_id, {"code": pyotp.TOTP(secret).now()})
        assert status == 200, body
        return secret, body["recovery_codes"] or []


def session_id(user_id: str) -> str:
    """The session id (`sid`) of the identities Mfa.identity signs for `user_id` by default."""
    return "s-" + user_id[:8]


def new_user() -> str:
    return str(uuid.uuid4())


def next_code(secret: str) -> str:
    """The code of the next time step: accepted (±1 step) and later than the step used to enable."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def wait_for(predicate: Any, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.fixture
async def mfa(stack_env: dict[str, str]) -> AsyncIterator[Mfa]:
    profile = StandInProfile(stack_env["SERVICE_AUTH_KEY"])
    server = TestServer(profile.app(), host="127.0.0.1")
    await server.start_server()
    db = await asyncpg.connect(stack_env["MFA_DATABASE_URL"])
    await db.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                            schema="pg_catalog")
    try:
        profile_url = str(server.make_url("")).rstrip("/")
        async with running_service("mfa", stack_env, PROFILE_URL=profile_url) as client:
            yield Mfa(client, stack_env, profile, db)
    finally:
        await db.close()
        await server.close()
