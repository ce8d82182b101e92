"""schemathesis over every public /api operation of profile and mfa, sent through the nginx gateway.

nginx does not expose /openapi.json, so each service's document is read from its own port; every request
goes to the gateway's base URL. Signed-in operations carry a real session cookie and its CSRF header
(the admin's for /api/admin, the demo user's otherwise); the anonymous auth steps carry none. A session
the fuzzer ended (logout, revocation) or locked (wrong passwords count against the account throttle) is
restored between examples: the throttle cleared in the database, then a fresh sign-in. Bounded:
EXAMPLES per operation and generation mode (FAULTS_FUZZ_EXAMPLES overrides).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from bench.faults_stack import FaultStack
from bench.report import Figure
from tests.support.stack import DEMO_PASSWORD

EXAMPLES = int(os.environ.get("FAULTS_FUZZ_EXAMPLES", "8"))
SCHEMA_CHECKS = {
    "response_schema_conformance": schemathesis.checks.response_schema_conformance,
    "content_type_conformance": schemathesis.checks.content_type_conformance,
    "status_code_conformance": schemathesis.checks.status_code_conformance,
}
CHECKS = [schemathesis.checks.not_a_server_error, *SCHEMA_CHECKS.values()]
ANONYMOUS_PREFIXES = ("/api/auth/login", "/api/auth/password-reset", "/api/auth/invitation", "/api/auth/not-me")
# After these the caller's session may be gone or changed: check it before the next example.
SESSION_CHANGING = {"/api/auth/logout", "/api/auth/sessions", "/api/auth/sessions/{id}", "/api/profile/password",
                    "/api/admin/users/{id}/impersonate", "/api/admin/impersonation/stop", "/api/auth/reauth"}
ACCOUNTS = {"admin": "admin@msp.example", "user": "demo@client.example"}


class Personas:
    """Signed-in sessions through the gateway, restored when an example ended or locked them."""

    def __init__(self, fs: FaultStack, loop: asyncio.AbstractEventLoop) -> None:
        self.fs = fs
        self.loop = loop
        self.base = fs.stack.base_url
        self.cookies: dict[str, dict[str, str]] = {}
        self.dirty: set[str] = set(ACCOUNTS)
        self.relogins = 0

    def _unlock(self, email: str) -> None:
        pool = self.fs.pools["profile"]
        asyncio.run_coroutine_threadsafe(pool.execute(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE email = $1", email), self.loop).result(10)

    def _valid(self, who: str) -> bool:
        cookies = self.cookies.get(who)
        if not cookies:
            return False
        response = requests.get(self.base + "/api/auth/session", cookies=cookies, timeout=10)
        if response.status_code != 200 or response.json().get("state") != "signed_in":
            return False
        if response.json().get("impersonator"):
            requests.post(self.base + "/api/admin/impersonation/stop", cookies=cookies, timeout=10,
                          headers=self.headers(who))
        return True

    def ensure(self, who: str) -> None:
        if who not in self.dirty:
            return
        if not self._valid(who):
            email = ACCOUNTS[who]
            for _ in range(8):  # the per-address auth rate limit (600/min) may need waiting out
                self._unlock(email)
                response = requests.post(self.base + "/api/auth/login", json={"email": email,
                                                                               "password": DEMO_PASSWORD},
                                         headers={"Origin": self.base}, timeout=20)
                if response.status_code == 200:
                    break
                time.sleep(min(float(response.headers.get("Retry-After", "1") or 1), 10.0))
            else:
                raise RuntimeError(f"cannot sign in {email} again: {response.status_code} {response.text[:200]}")
            self.cookies[who] = dict(response.cookies)
            self.relogins += 1
        self.dirty.discard(who)

    def headers(self, who: str) -> dict[str, str]:
        return {"Origin": self.base, "X-CSRF-Token": self.cookies.get(who, {}).get("portal_csrf", "")}


def persona_for(path: str) -> str | None:
    if path.startswith(ANONYMOUS_PREFIXES):
        return None
    return "admin" if path.startswith("/api/admin") else "user"


def _fuzz(operation: Any, personas: Personas, tally: Counter[str], examples: list[str]) -> None:
    path, method = operation.path, operation.method.upper()
    who = persona_for(path)
    fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, database=None,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.body or operation.path_parameters
                                         else [])
    session = requests.Session()
    try:
        for mode in modes:
            @fuzz_settings
            @given(case=operation.as_strategy(mode), _=st.just(mode))
            def run(case: schemathesis.Case, _: Any) -> None:
                headers: dict[str, str] = {"Origin": personas.base}
                cookies: dict[str, str] = {}
                if who is not None:
                    personas.ensure(who)
                    headers = personas.headers(who)
                    cookies = personas.cookies[who]
                session.cookies.clear()
                try:
                    response = case.call(base_url=personas.base, session=session, headers=headers, cookies=cookies,
                                         timeout=15)
                except requests.RequestException as exc:
                    tally["transport_error"] += 1
                    examples.append(f"{method} {path}: {type(exc).__name__}")
                    return
                tally["requests"] += 1
                tally[f"status {response.status_code // 100}xx"] += 1
                if who is not None and (path in SESSION_CHANGING or response.status_code == 401):
                    personas.dirty.add(who)
                if response.status_code >= 500:
                    tally["server_error"] += 1
                    examples.append(f"{method} {path} -> {response.status_code}: {response.text[:160]}")
                for name, check in SCHEMA_CHECKS.items():
                    try:
                        case.validate_response(response, checks=[check])
                    except Exception as exc:  # schemathesis' FailureGroup / Failure
                        tally[name] += 1
                        if len(examples) < 40:
                            examples.append(f"{method} {path} -> {response.status_code} [{name}]: "
                                            f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}")

            run()
    finally:
        session.close()


async def schemathesis_run(fs: FaultStack) -> list[Figure]:
    started = time.monotonic()
    operations = []
    for service in ("profile", "mfa"):
        url = f"http://127.0.0.1:{getattr(fs.ports, service)}/openapi.json"
        schema = await asyncio.to_thread(schemathesis.openapi.from_url, url, timeout=10)
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path.startswith("/api/"):
                operations.append(operation)
    personas = Personas(fs, asyncio.get_running_loop())
    tally: Counter[str] = Counter()
    examples: list[str] = []
    for operation in operations:
        await asyncio.to_thread(_fuzz, operation, personas, tally, examples)
    seconds = time.monotonic() - started
    schema_violations = sum(tally[name] for name in SCHEMA_CHECKS)
    for line in examples[:40]:
        print("  schemathesis:", line)
    summary = (f"{len(operations)} operations, {tally['requests']} requests in {seconds:.0f} s "
               f"({EXAMPLES} examples per operation and mode); "
               + ", ".join(f"{k} {v}" for k, v in sorted(tally.items()) if k.startswith("status"))
               + f"; {personas.relogins} re-sign-ins")
    return [
        Figure("schemathesis through nginx: operations x requests", tally["requests"], ">= 100", note=summary),
        Figure("schemathesis through nginx: 5xx responses", tally["server_error"] + tally["transport_error"], "<= 0",
               note=f"transport errors {tally['transport_error']}"),
        Figure("schemathesis through nginx: schema violations", schema_violations, "<= 0",
               note=", ".join(f"{name} {tally[name]}" for name in SCHEMA_CHECKS)),
    ]
