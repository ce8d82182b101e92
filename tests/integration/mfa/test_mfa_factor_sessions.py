"""Adding or removing a factor ends the user's other sessions (security issue #13): mfa asks profile
(POST /internal/users/{id}/sessions/end-others, keeping the caller's session) inside the change's
transaction, and changes nothing when profile does not confirm (503, fail closed)."""

from __future__ import annotations

import pyotp

from tests.integration.mfa.conftest import Mfa, new_user, next_code, session_id
from tests.integration.mfa.test_mfa_webauthn_flows import register
from tests.support.soft_authenticator import SoftAuthenticator


async def test_each_factor_change_ends_the_other_sessions_keeping_the_callers(mfa: Mfa) -> None:
    user = new_user()
    keep = (user, session_id(user))
    await mfa.enable_totp(user)  # turns two-factor on
    assert mfa.profile.sessions_ended == [keep]
    status, body = await register(mfa, user, SoftAuthenticator())  # a key beside the app
    assert status == 201, body
    assert mfa.profile.sessions_ended == [keep] * 2
    status, _ = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": "correct horse battery staple"})
    assert status == 204
    assert mfa.profile.sessions_ended == [keep] * 3
    await mfa.enable_totp(user)  # beside the key: totp_enabled, no new codes
    assert mfa.profile.sessions_ended == [keep] * 4
    status, _ = await mfa.call("DELETE", f"/api/mfa/webauthn/{body['key']['id']}", user)
    assert status == 204
    assert mfa.profile.sessions_ended == [keep] * 5

    # Renaming a key or regenerating codes changes no factor: other sessions stay.
    status, _ = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {}, reauth_age=5)
    assert status == 200
    assert len(mfa.profile.sessions_ended) == 5


async def test_first_key_and_last_key_end_other_sessions(mfa: Mfa) -> None:
    user = new_user()
    status, body = await register(mfa, user, SoftAuthenticator())
    assert status == 201 and body["recovery_codes"]
    status, _ = await mfa.call("DELETE", f"/api/mfa/webauthn/{body['key']['id']}", user)
    assert status == 204
    assert mfa.profile.sessions_ended == [(user, session_id(user))] * 2
    assert mfa.profile.latched == [user]


async def test_an_identity_without_a_session_id_ends_every_session(mfa: Mfa) -> None:
    user = new_user()
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user, sid=None)
    assert status == 200
    status, _ = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": pyotp.TOTP(setup["secret"]).now()},
                               sid=None)
    assert status == 200
    assert mfa.profile.sessions_ended == [(user, None)]


async def state(mfa: Mfa, user: str) -> tuple[object, ...]:
    """Everything a factor change could touch, to compare before and after a refused change."""
    totp = await mfa.db.fetchrow("SELECT enabled_at, pending_until, last_used_step FROM mfa.totp_secrets "
                                 "WHERE user_id = $1", user)
    keys = await mfa.db.fetch("SELECT id FROM mfa.webauthn_credentials WHERE user_id = $1 ORDER BY id", user)
    codes = await mfa.db.fetch("SELECT code_hash FROM mfa.recovery_codes WHERE user_id = $1 ORDER BY code_hash",
                               user)
    return (tuple(totp) if totp else None, [k["id"] for k in keys], [c["code_hash"] for c in codes],
            await mfa.events(user))


def unavailable(status: int, body: dict[str, object]) -> bool:
    return status == 503 and str(body["type"]).endswith("/service-unavailable")


async def test_nothing_changes_while_profile_cannot_end_the_sessions(mfa: Mfa) -> None:
    user = new_user()
    mfa.profile.end_others_down = True

    # A first authenticator app: the latch went up (harmless, see docs), the app stays pending, no codes.
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)
    assert status == 200
    before = await state(mfa, user)
    code = pyotp.TOTP(setup["secret"]).now()
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": code})
    assert unavailable(status, body), body
    assert await state(mfa, user) == before

    # A first key: not stored.
    status, body = await register(mfa, user, SoftAuthenticator())
    assert unavailable(status, body), body
    assert await state(mfa, user) == before

    mfa.profile.end_others_down = False
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": code})
    assert status == 200, body  # the same code: the refused attempt spent nothing
    status, body = await register(mfa, user, SoftAuthenticator())
    assert status == 201, body
    key_id = body["key"]["id"]
    secret = setup["secret"]

    mfa.profile.end_others_down = True
    before = await state(mfa, user)
    # With the app and a key on: adding a second key, disabling the app, removing the key.
    status, body = await register(mfa, user, SoftAuthenticator())
    assert unavailable(status, body), body
    status, body = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": "correct horse battery staple"})
    assert unavailable(status, body), body
    status, body = await mfa.call("DELETE", f"/api/mfa/webauthn/{key_id}", user)
    assert unavailable(status, body), body
    assert await state(mfa, user) == before
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["totp"]["enabled"] and len(view["security_keys"]) == 1
    assert (await mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": next_code(secret)}))[1] == {
        "ok": True, "recovery_codes_remaining": 10}


async def test_totp_beside_a_key_is_not_enabled_while_profile_is_down(mfa: Mfa) -> None:
    """Two-factor already on (no latch call): the end-others call alone decides."""
    user = new_user()
    status, body = await register(mfa, user, SoftAuthenticator())
    assert status == 201
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)
    before = await state(mfa, user)
    mfa.profile.down = True
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": pyotp.TOTP(setup["secret"]).now()})
    assert unavailable(status, body), body
    assert await state(mfa, user) == before
