"""Helpers for profile's integration tests: browsers with their own cookie jars, the harness, and a stand-in
for mfa's internal endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient
from portal_shared import broker, tokens
from portal_shared.events import Envelope, Event, encode

PASSWORD = "Sturdy-Lantern-42"
ADMIN_EMAIL = "admin@msp.example"
DEMO_EMAIL = "demo@client.example"
PORTAL_ORIGIN = "http://localhost:8080"
TOTP_CODE = "123456"


@dataclass
class StandInMfa:
    """Stands in for mfa's internal endpoints (docs/internal-api.md) until the cross-service e2e tests exist.

    Same contract: service token with audience `mfa`; a user has TOTP when in `totp`, keys when in `keys`,
    recovery codes in `codes`. The right TOTP code is TOTP_CODE; a key assertion is `{"id": "good-key"}`;
    a passkey assertion is `{"id": "passkey", "user": <user id>}`.
    """

    key: str
    totp: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    codes: dict[str, set[str]] = field(default_factory=dict)
    challenges: dict[str, str | None] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    resets: list[tuple[str, str]] = field(default_factory=list)
    # When set, a factors answer is read, then held until this event is set (`factors_read` tells when):
    # an answer on its way while the account's factors change.
    hold_factors: asyncio.Event | None = None
    # Users for whom the factors answer says two-factor is on but lists no factor (a confused mfa).
    unlisted: set[str] = field(default_factory=set)
    factors_read: asyncio.Event = field(default_factory=asyncio.Event)

    def enable_totp(self, user_id: str, codes: int = 10) -> list[str]:
        self.totp.add(user_id)
        self.codes[user_id] = {f"code-{i:04d}" for i in range(codes)}
        return sorted(self.codes[user_id])

    def _enabled(self, user_id: str) -> bool:
        return user_id in self.totp or user_id in self.keys

    @web.middleware
    async def auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            tokens.verify_service_call(self.key, request.headers.get("Authorization"), audience="mfa")
        except tokens.InvalidToken:
            return web.json_response({"detail": "service token required"}, status=401)
        self.calls.append((request.path, await request.json() if request.can_read_body else None))
        return await handler(request)

    async def factors(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        kinds = (["totp"] if user_id in self.totp else []) + (["webauthn"] if user_id in self.keys else [])
        enabled = self._enabled(user_id)
        answer = {"two_factor_enabled": enabled, "second_factors": [*kinds, "recovery_code"] if enabled else [],
                  "recovery_codes_remaining": len(self.codes.get(user_id, ())) if enabled else None}
        if user_id in self.unlisted:
            answer = {"two_factor_enabled": True, "second_factors": [], "recovery_codes_remaining": 0}
        if self.hold_factors is not None:
            self.factors_read.set()
            await self.hold_factors.wait()
        return web.json_response(answer)

    async def verify_totp(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"ok": body["user_id"] in self.totp and body["code"] == TOTP_CODE})

    async def verify_recovery_code(self, request: web.Request) -> web.Response:
        body = await request.json()
        codes = self.codes.get(body["user_id"], set())
        ok = body["code"] in codes
        codes.discard(body["code"])
        return web.json_response({"ok": ok, "remaining": len(codes)})

    async def webauthn_options(self, request: web.Request) -> web.Response:
        body = await request.json()
        challenge_id = secrets.token_hex(8)
        self.challenges[challenge_id] = body["user_id"]
        return web.json_response({"challenge_id": challenge_id,
                                  "options": {"challenge": secrets.token_urlsafe(16), "rpId": "localhost"}})

    async def verify_webauthn(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["challenge_id"] not in self.challenges:
            return web.json_response({"ok": False, "user_id": None})
        expected = self.challenges.pop(body["challenge_id"])
        credential = body["credential"]
        if expected is None and credential.get("id") == "passkey" and body["user_id"] is None:
            return web.json_response({"ok": True, "user_id": credential.get("user")})
        if expected and expected == body["user_id"] and expected in self.keys and credential.get("id") == "good-key":
            return web.json_response({"ok": True, "user_id": expected})
        return web.json_response({"ok": False, "user_id": None})

    async def reset(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        self.resets.append((user_id, (await request.json())["admin_id"]))
        self.totp.discard(user_id)
        self.keys.discard(user_id)
        self.codes.pop(user_id, None)
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth])
        app.router.add_get("/internal/users/{user_id}/factors", self.factors)
        app.router.add_post("/internal/verify/totp", self.verify_totp)
        app.router.add_post("/internal/verify/recovery-code", self.verify_recovery_code)
        app.router.add_post("/internal/webauthn/options", self.webauthn_options)
        app.router.add_post("/internal/verify/webauthn", self.verify_webauthn)
        app.router.add_post("/internal/users/{user_id}/reset", self.reset)
        return app


class Browser:
    """One browser: its own cookie jar; sends X-CSRF-Token from the portal_csrf cookie on unsafe methods."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def cookie(self, name: str) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    async def call(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = dict(headers or {})
        if csrf and method not in ("GET", "HEAD") and self.cookie("portal_csrf"):
            sent.setdefault("X-CSRF-Token", self.cookie("portal_csrf") or "")
        kwargs: dict[str, Any] = {"headers": sent}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.base_url + path, **kwargs) as response:
            raw = await response.read()
            data = await response.json(content_type=None) if raw else None
            if response.status >= 400:
                assert response.content_type == "application/problem+json", (response.status, data)
                assert data["status"] == response.status and data["detail"], data
            return response.status, data, response

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.call("GET", path, **kw)
        return status, data

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.call("POST", path, body, **kw)
        return status, data

    async def patch(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.call("PATCH", path, body, **kw)
        return status, data

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        status, data, _ = await self.call("DELETE", path, **kw)
        return status, data

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        status, data = await self.post("/api/auth/login", {"email": email, "password": password})
        assert status == 200, (status, data)
        return data

    async def close(self) -> None:
        await self.http.close()


@dataclass
class ProfileHarness:
    client: TestClient
    env: dict[str, str]
    mfa: StandInMfa
    mfa_url: str
    db: asyncpg.Connection
    admin_id: str
    demo_id: str
    browsers: list[Browser] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    def browser(self) -> Browser:
        browser = Browser(self.base_url)
        self.browsers.append(browser)
        return browser

    async def signed_in(self, email: str = DEMO_EMAIL, password: str = PASSWORD) -> Browser:
        browser = self.browser()
        await browser.login(email, password)
        return browser

    async def raise_two_factor(self, user_id: str) -> None:
        """What mfa does before it commits a user's first factor: raise profile's two-factor latch."""
        headers = tokens.service_authorization(self.env["SERVICE_AUTH_KEY"], issuer="mfa", audience="profile")
        response = await self.client.post(f"/internal/users/{user_id}/two-factor-on", headers=headers,
                                          json={"at": datetime.now(UTC).isoformat()})
        assert response.status == 204, await response.text()

    async def enable_totp(self, user_id: str, codes: int = 10) -> list[str]:
        """The user turns on an authenticator app (in the stand-in mfa, latch first, as mfa does)."""
        await self.raise_two_factor(user_id)
        return self.mfa.enable_totp(user_id, codes)

    async def add_key(self, user_id: str) -> None:
        await self.raise_two_factor(user_id)
        self.mfa.keys.add(user_id)

    def factor_checks(self, user_id: str) -> int:
        """How often profile asked the stand-in mfa for the user's factors."""
        return [path for path, _ in self.mfa.calls].count(f"/internal/users/{user_id}/factors")

    async def kept_factors(self, user_id: str) -> list[str] | None:
        """The factor list profile keeps for the account's sign-ins (None: none kept)."""
        return await self.db.fetchval("SELECT second_factors FROM profile.users WHERE id = $1", uuid.UUID(user_id))

    async def deliver(self, event: Event, occurred_at: datetime | None = None) -> None:
        """Publish an mfa event as mfa's relay would, and wait until profile's consumer has handled it."""
        envelope = Envelope.wrap(event, source="mfa")
        if occurred_at is not None:
            envelope = dataclasses.replace(envelope, occurred_at=occurred_at.isoformat().replace("+00:00", "Z"))
        await self.publish(envelope)

    async def publish(self, envelope: Envelope, *, wait: bool = True) -> None:
        """Publish an envelope to the bus; with `wait`, return once profile's consumer has handled it."""
        connection = await aio_pika.connect(self.env["AMQP_URL"])
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await broker.declare_exchange(channel)
            await exchange.publish(aio_pika.Message(encode(envelope), message_id=envelope.id, type=envelope.type,
                                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                   routing_key=envelope.type)
        finally:
            await connection.close()
        for _ in range(200 if wait else 0):
            if await self.db.fetchval("SELECT count(*) FROM profile.inbox WHERE message_id = $1", envelope.id):
                return
            await asyncio.sleep(0.05)
        if wait:
            raise AssertionError(f"profile did not handle {envelope.type}")

    async def events(self, type_: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT body FROM profile.outbox WHERE type = $1 ORDER BY created_at", type_)
        return [r["body"] if isinstance(r["body"], dict) else json.loads(r["body"]) for r in rows]

    async def audit_types(self, user_id: str) -> list[str]:
        rows = await self.db.fetch("SELECT type FROM profile.audit_log WHERE user_id = $1 ORDER BY id",
                                   uuid.UUID(user_id))
        return [r["type"] for r in rows]
