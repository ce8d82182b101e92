"""Who may call mfa: the gateway's identity on /api/mfa*, a service token on /internal/*, no changes while
an admin impersonates; and the OpenAPI document lists every public route."""

from __future__ import annotations

import pytest
from portal_shared import tokens

from tests.integration.mfa.conftest import Mfa, new_user

CHANGES = [
    ("POST", "/api/mfa/totp/setup"), ("POST", "/api/mfa/totp/verify"), ("POST", "/api/mfa/totp/disable"),
    ("POST", "/api/mfa/webauthn/register/options"), ("POST", "/api/mfa/webauthn/register"),
    ("PATCH", "/api/mfa/webauthn/3f1c0e6e-0000-4000-8000-000000000000"),
    ("DELETE", "/api/mfa/webauthn/3f1c0e6e-0000-4000-8000-000000000000"),
    ("POST", "/api/mfa/recovery-codes/regenerate"),
]


async def test_public_api_needs_a_valid_identity(mfa: Mfa) -> None:
    user = new_user()
    response = await mfa.client.get("/api/mfa")
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == 401 and body["detail"]
    for headers in (
        mfa.identity(user, key="another-key"),                # not signed by our key
        mfa.identity(user, purpose=tokens.SERVICE_CALL),      # a token made for another purpose
        {tokens.IDENTITY_HEADER: "garbage"},
        {tokens.IDENTITY_HEADER: tokens.sign(mfa.env["SERVICE_AUTH_KEY"], tokens.IDENTITY, {"sub": user},
                                             ttl_seconds=-1)},  # expired
    ):
        assert (await mfa.client.get("/api/mfa", headers=headers)).status == 401
    for method, path in CHANGES:
        assert (await mfa.client.request(method, path)).status == 401, path
    status, body = await mfa.call("GET", "/api/mfa", user)
    assert status == 200
    assert body == {"two_factor_enabled": False, "totp": {"enabled": False, "enabled_at": None},
                    "security_keys": [], "recovery_codes": None}


@pytest.mark.parametrize(("method", "path"), CHANGES)
async def test_no_changes_while_an_admin_impersonates(mfa: Mfa, method: str, path: str) -> None:
    admin = {"id": new_user(), "name": "MSP Admin", "email": "admin@msp.example"}
    status, body = await mfa.call(method, path, new_user(), {"password": "x", "code": "123456", "name": "k"},
                                  imp=admin)
    assert status == 403, body
    status, _ = await mfa.call("GET", "/api/mfa", new_user(), imp=admin)
    assert status == 200  # looking is fine


async def test_internal_api_needs_a_service_token_for_mfa(mfa: Mfa) -> None:
    user = new_user()
    path = f"/internal/users/{user}/factors"
    assert (await mfa.client.get(path)).status == 401
    assert (await mfa.client.get(path, headers=mfa.service(audience="profile"))).status == 401
    assert (await mfa.client.get(path, headers=mfa.identity(user))).status == 401
    status, body = await mfa.internal("GET", path)
    assert status == 200
    assert body == {"two_factor_enabled": False, "second_factors": [], "recovery_codes_remaining": 0}


async def test_bad_input_is_a_4xx_problem_never_a_5xx(mfa: Mfa) -> None:
    user = new_user()
    response = await mfa.client.post("/api/mfa/totp/verify", data=b"{not json", headers={
        **mfa.identity(user), "Content-Type": "application/json"})
    assert response.status == 400
    response = await mfa.client.post("/api/mfa/totp/verify", data=b"[1]", headers={
        **mfa.identity(user), "Content-Type": "application/json"})
    assert response.status == 400
    for body in ({}, {"code": 123456}, {"code": None}, {"code": "x" * 5000}):
        status, answer = await mfa.call("POST", "/api/mfa/totp/verify", user, body)
        assert status == 422 and "code" in answer["errors"], answer
    status, _ = await mfa.call("PATCH", "/api/mfa/webauthn/not-a-uuid", user, {"name": "x"})
    assert status == 404
    status, _ = await mfa.call("GET", "/api/mfa/nope", user)
    assert status == 404
    for path, body in (("/internal/verify/totp", {"code": "123456"}), ("/internal/verify/webauthn", {}),
                       ("/internal/webauthn/options", {}), ("/internal/verify/recovery-code", {"user_id": 5})):
        status, answer = await mfa.internal("POST", path, body)
        assert status == 422, (path, answer)
    for code in (None, 123456, "x" * 5000, ""):
        for path in ("/internal/verify/totp", "/internal/verify/recovery-code"):
            status, answer = await mfa.internal("POST", path, {"user_id": user, "code": code})
            assert status == 200 and answer["ok"] is False, (path, answer)


async def test_openapi_document_lists_every_public_route(mfa: Mfa) -> None:
    response = await mfa.client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    routes = {(r.method.lower(), r.resource.canonical) for r in mfa.client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"}
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented
    assert len(routes) == 9
