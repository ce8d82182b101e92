"""Adding a factor needs a recent sign-in or re-authentication, like removing one (security issue #13):
each of the four add-factor calls refuses an identity older than 10 minutes with 403 reauth-required and
creates nothing, and works once the session re-authenticated."""

from __future__ import annotations

from typing import Any

import pyotp

from tests.integration.mfa.conftest import Mfa, new_user
from tests.support.soft_authenticator import SoftAuthenticator

STALE = {"auth_age": 11 * 60}  # signed in 11 minutes ago, never re-authenticated
REAUTHENTICATED = {"auth_age": 3600, "reauth_age": 30}


def refused(status: int, body: Any) -> bool:
    return status == 403 and body["type"].endswith("/reauth-required") and "Confirm it's you" in body["detail"]


async def nothing_created(mfa: Mfa, user: str) -> None:
    """No enabled app, no key, no codes, no event, no latch, no sessions ended."""
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.totp_secrets WHERE user_id = $1 AND enabled_at "
                                 "IS NOT NULL", user) == 0
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.webauthn_credentials WHERE user_id = $1", user) == 0
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.recovery_codes WHERE user_id = $1", user) == 0
    assert await mfa.events(user) == []
    assert mfa.profile.latched == [] and mfa.profile.sessions_ended == []


async def test_totp_setup_needs_a_recent_sign_in(mfa: Mfa) -> None:
    user = new_user()
    status, body = await mfa.call("POST", "/api/mfa/totp/setup", user, **STALE)
    assert refused(status, body), body
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.totp_secrets WHERE user_id = $1", user) == 0
    await nothing_created(mfa, user)

    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user, **REAUTHENTICATED)
    assert status == 200 and setup["secret"]


async def test_totp_verify_needs_a_recent_sign_in(mfa: Mfa) -> None:
    """A pending setup outlives the 10 minutes (15), so the enabling call is checked too."""
    user = new_user()
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)
    assert status == 200
    code = pyotp.TOTP(setup["secret"]).now()
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": code}, **STALE)
    assert refused(status, body), body
    row = await mfa.db.fetchrow("SELECT enabled_at, pending_until, last_used_step FROM mfa.totp_secrets "
                                "WHERE user_id = $1", user)
    assert row["enabled_at"] is None and row["pending_until"] is not None and row["last_used_step"] == 0
    await nothing_created(mfa, user)

    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": code}, **REAUTHENTICATED)
    assert status == 200 and len(body["recovery_codes"]) == 10  # the same code: the refusal spent nothing


async def test_webauthn_registration_options_need_a_recent_sign_in(mfa: Mfa) -> None:
    user = new_user()
    status, body = await mfa.call("POST", "/api/mfa/webauthn/register/options", user, **STALE)
    assert refused(status, body), body
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.webauthn_challenges WHERE user_id = $1", user) == 0
    await nothing_created(mfa, user)

    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user, **REAUTHENTICATED)
    assert status == 200 and options["challenge"]


async def test_webauthn_register_needs_a_recent_sign_in_and_keeps_the_challenge(mfa: Mfa) -> None:
    user = new_user()
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user)
    assert status == 200
    credential = SoftAuthenticator().create(options)
    body = {"credential": credential, "name": "YubiKey"}
    status, answer = await mfa.call("POST", "/api/mfa/webauthn/register", user, body, **STALE)
    assert refused(status, answer), answer
    await nothing_created(mfa, user)

    # Refused before the challenge was spent: after re-authenticating, the same credential registers.
    status, answer = await mfa.call("POST", "/api/mfa/webauthn/register", user, body, **REAUTHENTICATED)
    assert status == 201 and answer["key"]["name"] == "YubiKey" and len(answer["recovery_codes"]) == 10


async def test_a_fresh_sign_in_is_enough_and_the_window_is_ten_minutes(mfa: Mfa) -> None:
    user = new_user()
    status, _ = await mfa.call("POST", "/api/mfa/totp/setup", user, auth_age=9 * 60)
    assert status == 200
    status, body = await mfa.call("POST", "/api/mfa/totp/setup", user, auth_age=3600, reauth_age=11 * 60)
    assert refused(status, body), body  # an old re-authentication is no better than an old sign-in
