"""schemathesis over every public operation of the profile app, against the app's own /openapi.json.

The real app runs in the test's event loop (real Postgres/RabbitMQ, the stand-in mfa), started as the other
profile integration tests start it but once for the module, with the per-IP limit raised so the fuzzer is not
answered 429 throughout; schemathesis (sync, `requests`) drives it from a worker thread over loopback.

Each example is sent as one of several callers, each with a session created for that example (so logout,
revoking sessions or spending second-factor attempts cannot spoil the next example): anonymous, a client user
signed in, a client user whose sign-in waits for its second factor, an MSP admin, and an MSP admin viewing
the client user's account. Signed-in callers send their real session cookie, the matching X-CSRF-Token and
the portal's Origin, as the browser does through the gateway. Login is fuzzed with random emails, so the
account throttle of the demo accounts is never what answers. Admin operations on /users/{id} also get the
client user's real id.

Both generation modes run (valid input, and input that violates the documented schema) with a bounded
number of examples per operation. Checks: no 5xx, only documented status codes and content types, response
bodies (problem+json included) conforming to the documented schemas, and schema-violating input refused
with a 4xx. Examples are random: set PROFILE_FUZZ_EXAMPLES for a longer hunt. test_hostile_input pins what
the fuzzer found once (NUL, lone surrogates, huge numbers, odd ids).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis

# Loaded now, at collection, rather than lazily by from_url in a worker thread: there, CPython 3.11.7's AST
# validator can miscount its recursion depth while pytest's assertion rewriter parses the module
# ("SystemError: AST constructor recursion depth mismatch"), which failed this test after others had run.
import schemathesis.specs.openapi.schemas
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from profile_service import sessions
from profile_service.bootstrap import seed_demo
from profile_service.models import SECOND_FACTOR_REQUIRED, SIGNED_IN
from profile_service.openapi import document
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, PORTAL_ORIGIN, StandInMfa
from schemathesis import GenerationMode

from tests.conftest import new_stack_env
from tests.support.backends import Backend
from tests.support.services import running_service
from tests.support.smtp import SmtpSink

# Per operation and generation mode; ~35 operations x 2 modes keeps the file under a minute on 2 cores.
EXAMPLES_PER_MODE = int(os.environ.get("PROFILE_FUZZ_EXAMPLES", "25"))
OPERATIONS = [(method.upper(), path) for path, ops in document()["paths"].items() for method in ops
              if method in {"get", "post", "put", "patch", "delete"}]
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]
Caller = Callable[[], dict[str, str] | None]  # the session cookie's value, or None for anonymous


@dataclass
class Fuzzed:
    client: TestClient
    db: asyncpg.Connection
    env: dict[str, str]
    admin_id: str
    demo_id: str
    loop: asyncio.AbstractEventLoop

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def new_session(self, user_id: str, state: str = SIGNED_IN, impersonating: str | None = None) -> str:
        """A session as sign-in leaves it (written directly: no argon2 per example); returns the cookie value."""
        raw, _ = await sessions.start(self.db, user_id=user_id, state=state, user_agent="fuzzer", ip="127.0.0.1",
                                      method="password")
        if impersonating:
            await self.db.execute("UPDATE sessions SET impersonated_user_id = $2, impersonation_reason = 'fuzz'"
                                  " WHERE id_hash = $1", sessions.hash_id(raw), uuid.UUID(impersonating))
        return raw

    def headers(self, raw: str | None) -> dict[str, str]:
        headers = {"Origin": PORTAL_ORIGIN}
        if raw is not None:
            headers[sessions.CSRF_HEADER] = sessions.csrf_token(self.env["SERVICE_AUTH_KEY"], raw)
        return headers

    def callers(self) -> dict[str, Callable[[], str | None]]:
        def make(user_id: str, state: str = SIGNED_IN, impersonating: str | None = None) -> Callable[[], str]:
            def new() -> str:  # runs in schemathesis' thread; the database connection lives in the test's loop
                coro = self.new_session(user_id, state, impersonating)
                return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)
            return new

        return {
            "anonymous": lambda: None,
            "client user": make(self.demo_id),
            "client user, second factor pending": make(self.demo_id, SECOND_FACTOR_REQUIRED),
            "msp admin": make(self.admin_id),
            "msp admin viewing the client user": make(self.admin_id, impersonating=self.demo_id),
        }


@pytest.fixture(scope="module")
async def fuzzed(backend: Backend, smtp_sink: SmtpSink) -> AsyncIterator[Fuzzed]:
    """One profile app for the module: the demo data, the stand-in mfa, the per-IP limit raised."""
    env = await new_stack_env(backend, smtp_port=smtp_sink.port)
    mfa = StandInMfa(env["SERVICE_AUTH_KEY"])
    mfa_server = TestServer(mfa.app(), host="127.0.0.1")
    await mfa_server.start_server()
    await seed_demo(env["PROFILE_DATABASE_URL"], password=PASSWORD)
    db = await asyncpg.connect(env["PROFILE_DATABASE_URL"])
    try:
        ids = {r["email"]: str(r["id"]) for r in await db.fetch("SELECT id, email FROM profile.users")}
        mfa.enable_totp(ids[DEMO_EMAIL])  # pending sign-ins have a second factor to check (latch raised below)
        await db.execute("UPDATE profile.users SET two_factor_enabled = true WHERE id = $1", uuid.UUID(ids[DEMO_EMAIL]))
        async with running_service("profile", env, MFA_URL=str(mfa_server.make_url("")).rstrip("/"),
                                   AUTH_RATE_PER_MINUTE=1_000_000) as client:
            yield Fuzzed(client, db, env, ids[ADMIN_EMAIL], ids[DEMO_EMAIL], asyncio.get_running_loop())
    finally:
        await db.close()
        await mfa_server.close()


def _fuzz(operation: schemathesis.APIOperation, fuzzed: Fuzzed) -> None:
    session = requests.Session()
    callers = fuzzed.callers()
    fuzz_settings = settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    # Schema-violating input needs something to violate: a body or a parameter.
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.body or operation.path_parameters
                                         or operation.query else [])
    try:
        for mode in modes:
            cases = operation.as_strategy(mode)
            if mode is GenerationMode.POSITIVE and "{id}" in operation.path and "/admin/" in operation.path:
                cases = st.one_of(cases, operation.as_strategy(mode, path_parameters={"id": fuzzed.demo_id}))

            @fuzz_settings
            @given(case=cases, who=st.sampled_from(sorted(callers)))
            def run(case: schemathesis.Case, who: str) -> None:
                raw = callers[who]()
                assert not case.cookies, case.cookies  # nothing documents a cookie but the session
                case.cookies = {sessions.SESSION_COOKIE: raw} if raw is not None else {}
                case.call_and_validate(base_url=fuzzed.base_url, session=session, headers=fuzzed.headers(raw),
                                       checks=CHECKS, timeout=10)

            run()
    finally:
        session.close()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_fuzz(fuzzed: Fuzzed, method: str, path: str) -> None:
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, fuzzed.base_url + "/openapi.json", timeout=10)
    # The session cookie is the caller's (below), never generated: a "missing cookie" negative case would be
    # sent with one and wrongly count as accepted schema-violating input.
    schema.config.generation.update(with_security_parameters=False)
    operation = schema[path][method]
    await asyncio.to_thread(_fuzz, operation, fuzzed)


HOSTILE: list[Any] = ["a\u0000b", "\ud800", "x" * 5000, "\u202e\u0007", "", " ", 10**400, -(2**64), 1e308,
                      True, None, [], {}, ["\u0000"], {"\ud800": "\u0000"}]


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode()  # json escapes NUL and lone surrogates, as a hostile client sends them


async def test_hostile_input(fuzzed: Fuzzed) -> None:
    """Strings Postgres or UTF-8 cannot take, huge numbers, odd ids: a 4xx problem+json, never a 5xx."""
    targets: list[tuple[str, str, tuple[str, ...], str | None]] = [
        ("POST", "/api/auth/login", ("email", "password"), None),
        ("POST", "/api/auth/login/totp", ("code",), SECOND_FACTOR_REQUIRED),
        ("POST", "/api/auth/login/recovery-code", ("code",), SECOND_FACTOR_REQUIRED),
        ("POST", "/api/auth/login/webauthn", ("credential",), SECOND_FACTOR_REQUIRED),
        ("POST", "/api/auth/login/passkey", ("credential",), None),
        ("POST", "/api/auth/reauth", ("password",), SIGNED_IN),
        ("POST", "/api/auth/reauth", ("totp_code",), SIGNED_IN),
        ("POST", "/api/auth/password-reset", ("email",), None),
        ("POST", "/api/auth/password-reset/confirm", ("token", "new_password", "confirm_password"), None),
        ("POST", "/api/auth/invitation/accept", ("token", "new_password", "confirm_password"), None),
        ("POST", "/api/auth/not-me", ("token",), None),
        ("PATCH", "/api/profile", ("name",), SIGNED_IN),
        ("PATCH", "/api/profile", ("phone",), SIGNED_IN),
        ("POST", "/api/profile/password", ("current_password", "new_password", "confirm_password"), SIGNED_IN),
        ("POST", "/api/admin/clients", ("name",), "admin"),
        ("POST", "/api/admin/users", ("email", "name", "client_id", "title", "mobile", "phone"), "admin"),
        ("PATCH", "/api/admin/users/{demo}", ("email", "name", "client_id", "title", "mobile", "phone"), "admin"),
        ("POST", "/api/admin/users/{demo}/impersonate", ("reason",), "admin"),
    ]
    http = fuzzed.client
    for method, path, fields, who in targets:
        path = path.replace("{demo}", fuzzed.demo_id)
        for value in HOSTILE:
            for field in fields:
                body = {f: "Valid-Looking-Value-1" for f in fields} | {field: value}
                raw = None
                if who == "admin":
                    raw = await fuzzed.new_session(fuzzed.admin_id)
                elif who is not None:
                    raw = await fuzzed.new_session(fuzzed.demo_id, who)
                cookies = {sessions.SESSION_COOKIE: raw} if raw else {}
                response = await http.request(method, path, data=_raw(body), cookies=cookies,
                                              headers={**fuzzed.headers(raw), "Content-Type": "application/json"})
                text = await response.text()
                assert response.status < 500, (method, path, field, value, text)
                if response.status >= 400:
                    assert response.content_type == "application/problem+json", (method, path, text)

    # Odd ids in paths and queries, and odd cookies.
    admin = await fuzzed.new_session(fuzzed.admin_id)
    for odd in ("a%00b", "%ED%A0%80", "x" * 300, "00000000-0000-0000-0000-00000000000g", "1e999", "%FF"):
        for method, path in (("GET", f"/api/admin/users/{odd}/audit"), ("PATCH", f"/api/admin/users/{odd}"),
                             ("POST", f"/api/admin/users/{odd}/mfa/reset"),
                             ("DELETE", f"/api/auth/sessions/{odd}"), ("GET", f"/api/admin/users?client_id={odd}"),
                             ("GET", f"/api/admin/users?q={odd}")):
            response = await http.request(method, path, cookies={sessions.SESSION_COOKIE: admin},
                                          headers=fuzzed.headers(admin))
            assert 400 <= response.status < 500 or (response.status == 200 and method == "GET"), \
                (method, path, response.status, await response.text())
    # Header bytes that are not UTF-8 or not ASCII (a raw request: clients refuse to send them).
    csrf = sessions.csrf_token(fuzzed.env["SERVICE_AUTH_KEY"], admin).encode()
    for cookie, token, agent, expected in (
            (b"\xff\xfe" * 10, csrf, b"fuzzer", 401), ("\u00e9".encode() * 20, csrf, b"fuzzer", 401),
            (b"x" * 5000, csrf, b"fuzzer", 401), (admin.encode(), "\u00e9".encode() * 3, b"fuzzer", 403),
            (admin.encode(), b"\xff" + csrf, b"fuzzer", 403), (admin.encode(), csrf, b"\xff\xfe agent", 204)):
        status = await _raw_request(fuzzed, b"DELETE /api/auth/sessions HTTP/1.1\r\nHost: x\r\n"
                                    b"Cookie: portal_session=" + cookie + b"\r\nX-CSRF-Token: " + token +
                                    b"\r\nUser-Agent: " + agent + b"\r\nConnection: close\r\n\r\n")
        assert status == expected, (cookie[:20], token, agent, status)
    # The same cookies on a second-factor attempt, whose CSRF check comes before any session is loaded.
    for cookie in (b"\xff\xfe" * 10, "\u00e9".encode() * 20, b"x" * 5000):
        body = b'{"code": "123456"}'
        status = await _raw_request(fuzzed, b"POST /api/auth/login/totp HTTP/1.1\r\nHost: x\r\n"
                                    b"Cookie: portal_session=" + cookie + b"\r\nX-CSRF-Token: " + csrf +
                                    b"\r\nContent-Type: application/json\r\nContent-Length: " +
                                    str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        assert status == 401, (cookie[:20], status)


async def _raw_request(fuzzed: Fuzzed, request: bytes) -> int:
    url = fuzzed.client.make_url("")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        return int((await reader.readline()).split()[1])
    finally:
        writer.close()
