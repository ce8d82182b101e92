"""schemathesis over every public operation of the mfa app, against the app's own /openapi.json.

The real app runs in the test's event loop (real Postgres/RabbitMQ, the stand-in profile), started as
the other mfa integration tests start it; schemathesis (sync, `requests`) drives it from a worker thread
over loopback. Every request carries a freshly signed X-Portal-Identity, the header the gateway sends
after its auth_request, so the fuzzer reaches the handlers rather than the 401 in front of them (CSRF and
Origin are checked by the gateway and profile: direct access has neither).

Both generation modes run (valid input, and input that violates the documented schema) with a bounded
number of examples per operation, as several callers: a new user, a user with an authenticator app and a
security key (signed in long ago, or just re-authenticated) and an administrator impersonating that user;
rename and remove also get that user's real key id. Checks: no 5xx, only documented status codes and
content types, response bodies (problem+json included) conforming to the documented schemas, and
schema-violating input refused with a 4xx. Examples are random: set MFA_FUZZ_EXAMPLES for a longer hunt.
test_hostile_strings pins what the fuzzer found once (NUL, lone surrogates, odd user ids).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable

import pytest
import requests
import schemathesis

# Loaded now, at collection, rather than lazily by from_url in a worker thread: there, CPython 3.11.7's AST
# validator can miscount its recursion depth while pytest's assertion rewriter parses the module
# ("SystemError: AST constructor recursion depth mismatch"), which failed this test after others had run.
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mfa_service.openapi import PATHS
from portal_shared import tokens
from schemathesis import GenerationMode

from tests.integration.mfa.conftest import Mfa, new_user
from tests.support.soft_authenticator import SoftAuthenticator

# Per operation and generation mode: 9 operations x 2 modes x 50 keeps the file well under a minute on 2 cores.
EXAMPLES_PER_MODE = int(os.environ.get("MFA_FUZZ_EXAMPLES", "50"))
OPERATIONS = [(method.upper(), path) for path, ops in PATHS.items() for method in ops]
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]
Personas = dict[str, Callable[[], dict[str, str]]]


async def _user_with_app_and_key(mfa: Mfa) -> tuple[str, str]:
    """A user with an authenticator app and one security key; returns (user id, key id)."""
    user = new_user()
    await mfa.enable_totp(user)
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user)
    assert status == 200, options
    credential = SoftAuthenticator().create(options)
    status, body = await mfa.call("POST", "/api/mfa/webauthn/register", user, {"credential": credential,
                                                                                "name": "Fuzzed key"})
    assert status == 201, body
    return user, body["key"]["id"]


def _personas(mfa: Mfa, user: str) -> Personas:
    return {
        "new user": lambda: mfa.identity(new_user()),
        "two-factor on": lambda: mfa.identity(user, auth_age=3600),
        "two-factor on, re-authenticated": lambda: mfa.identity(user, auth_age=3600, reauth_age=10),
        "impersonated": lambda: mfa.identity(user, imp={"id": new_user(), "name": "Admin",
                                                        "email": "admin@msp.example"}),
    }


def _fuzz(operation: schemathesis.APIOperation, base_url: str, personas: Personas, key_id: str) -> None:
    session = requests.Session()
    fuzz_settings = settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    # Schema-violating input needs something to violate: a body or a parameter.
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.body or operation.path_parameters
                                         else [])
    try:
        for mode in modes:
            cases = operation.as_strategy(mode)
            if mode is GenerationMode.POSITIVE and operation.path_parameters:
                cases = st.one_of(cases, operation.as_strategy(mode, path_parameters={"id": key_id}))

            @fuzz_settings
            @given(case=cases, who=st.sampled_from(sorted(personas)))
            def run(case: schemathesis.Case, who: str) -> None:
                case.call_and_validate(base_url=base_url, session=session, headers=personas[who](),
                                       checks=CHECKS, timeout=10)

            run()
    finally:
        session.close()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_fuzz(mfa: Mfa, method: str, path: str) -> None:
    user, key_id = await _user_with_app_and_key(mfa)
    base_url = str(mfa.client.make_url("")).rstrip("/")
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, base_url + "/openapi.json", timeout=10)
    operation = schema[path][method]
    await asyncio.to_thread(_fuzz, operation, base_url, _personas(mfa, user), key_id)


HOSTILE = ["a\u0000b", "\ud800", "x" * 5000, "\u202e\u0007", "１２３４５６", "123456\n", "", " "]


def _raw(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()  # json escapes lone surrogates, as a hostile client would send them


async def test_hostile_strings(mfa: Mfa) -> None:
    """Strings Postgres or UTF-8 cannot take, and odd user ids: a 4xx problem+json, never a 5xx."""
    user, key_id = await _user_with_app_and_key(mfa)
    mfa.profile.passwords[user] = "a\u0000b"  # the stand-in compares; mfa must not choke on it either
    targets = [("POST", "/api/mfa/totp/verify", "code"), ("POST", "/api/mfa/totp/disable", "password"),
               ("POST", "/api/mfa/recovery-codes/regenerate", "password"),
               ("POST", "/api/mfa/webauthn/register", "name"), ("PATCH", f"/api/mfa/webauthn/{key_id}", "name"),
               ("PATCH", f"/api/mfa/webauthn/{uuid.uuid4()}", "name")]
    for method, path, field in targets:
        for value in HOSTILE:
            response = await mfa.client.request(method, path, data=_raw({field: value, "credential": {}}),
                                                headers={**mfa.identity(user),
                                                         "Content-Type": "application/json"})
            assert response.status < 500, (method, path, field, value, await response.text())
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert status == 200 and view["security_keys"][0]["name"] == "123456"  # the last name that was valid

    # User ids come signed from profile, but the service still refuses what it cannot store.
    for odd in ("a\u0000b", "\ud800", "u" * 65, "é" * 40):
        token = tokens.sign(mfa.env["SERVICE_AUTH_KEY"], tokens.IDENTITY, {"sub": odd, "auth_at": 0}, ttl_seconds=60)
        for method, path in (("GET", "/api/mfa"), ("POST", "/api/mfa/totp/setup"),
                             ("POST", "/api/mfa/webauthn/register/options")):
            response = await mfa.client.request(method, path, headers={tokens.IDENTITY_HEADER: token})
            assert response.status == 401, (odd, path, await response.text())
        for path, body in (("/internal/verify/totp", {"user_id": odd, "code": "123456"}),
                           ("/internal/verify/recovery-code", {"user_id": odd, "code": "abc"}),
                           ("/internal/webauthn/options", {"user_id": odd})):
            response = await mfa.client.post(path, data=_raw(body),
                                             headers={**mfa.service(), "Content-Type": "application/json"})
            assert response.status == 422, (odd, path, await response.text())
    response = await mfa.client.get("/internal/users/a%00b/factors", headers=mfa.service())
    assert response.status == 422
