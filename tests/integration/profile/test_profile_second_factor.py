"""The second-factor steps of sign-in, against a stand-in for mfa's internal endpoints (profile_support)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from portal_shared import tokens
from portal_shared.events import MfaResetByAdmin, TwoFactorDisabled
from profile_support import DEMO_EMAIL, PASSWORD, TOTP_CODE, ProfileHarness


async def _pending(portal: ProfileHarness):  # type: ignore[no-untyped-def]
    browser = portal.browser()
    body = await browser.login(DEMO_EMAIL)
    assert body == {"state": "second_factor_required", "second_factors": ["totp", "recovery_code"]}
    return browser


async def test_totp_completes_sign_in_with_a_new_session_id(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    browser = await _pending(portal)
    pending_id = browser.cookie("portal_session")
    assert browser.cookie("portal_csrf"), "a pending sign-in gets the CSRF cookie too"
    status, session = await browser.get("/api/auth/session")
    assert status == 200 and session["state"] == "second_factor_required"
    assert (await browser.get("/api/profile"))[0] == 401
    cookie = f"portal_session={pending_id}"
    assert (await portal.client.get("/internal/auth", headers={"Cookie": cookie})).status == 401

    status, body = await browser.post("/api/auth/login/totp", {"code": "000000"})
    assert status == 401 and body["type"].endswith("invalid-second-factor")
    status, body = await browser.post("/api/auth/login/totp", {"code": TOTP_CODE})
    assert (status, body) == (200, {"state": "signed_in", "recovery_codes_remaining": 10})
    assert browser.cookie("portal_session") != pending_id, "no session fixation: the id changes"
    assert (await browser.get("/api/profile"))[0] == 200
    fixated = portal.browser()
    fixated.http.cookie_jar.update_cookies({"portal_session": pending_id or ""})
    assert (await fixated.get("/api/profile"))[0] == 401
    assert (await fixated.get("/api/auth/session"))[0] == 401


async def test_five_wrong_codes_void_the_pending_sign_in(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    browser = await _pending(portal)
    for _ in range(5):
        status, body = await browser.post("/api/auth/login/totp", {"code": "111111"})
        assert status == 401 and body["type"].endswith("invalid-second-factor")
    status, body = await browser.post("/api/auth/login/totp", {"code": TOTP_CODE})
    assert status == 401 and body["type"].endswith("sign-in-expired")
    assert (await browser.get("/api/profile"))[0] == 401
    again = await _pending(portal)
    assert (await again.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200


async def test_recovery_code_is_spent(portal: ProfileHarness) -> None:
    codes = await portal.enable_totp(portal.demo_id)
    browser = await _pending(portal)
    status, body = await browser.post("/api/auth/login/recovery-code", {"code": codes[0]})
    assert (status, body) == (200, {"state": "signed_in", "recovery_codes_remaining": 9})
    again = await _pending(portal)
    assert (await again.post("/api/auth/login/recovery-code", {"code": codes[0]}))[0] == 401


async def test_security_key_and_passkey(portal: ProfileHarness) -> None:
    await portal.add_key(portal.demo_id)
    browser = portal.browser()
    body = await browser.login(DEMO_EMAIL)
    assert body["second_factors"] == ["webauthn", "recovery_code"]
    assert (await browser.post("/api/auth/login/webauthn", {"credential": {"id": "good-key"}}))[0] == 401
    status, options = await browser.post("/api/auth/login/webauthn/options")
    assert status == 200 and "challenge" in options and "publicKey" not in options
    status, body = await browser.post("/api/auth/login/webauthn", {"credential": {"id": "good-key"}})
    assert status == 200 and body["state"] == "signed_in"

    stranger = portal.browser()
    assert (await stranger.post("/api/auth/login/passkey", {"credential": {"id": "passkey"}}))[0] == 401
    status, options = await stranger.post("/api/auth/login/passkey/options")
    assert status == 200 and "challenge" in options
    status, body = await stranger.post("/api/auth/login/passkey",
                                       {"credential": {"id": "passkey", "user": portal.demo_id}})
    assert status == 200 and body["state"] == "signed_in"
    assert (await stranger.get("/api/profile"))[1]["email"] == DEMO_EMAIL
    assert (await stranger.post("/api/auth/login/passkey", {"credential": {"id": "passkey"}}))[0] == 401


async def test_second_factor_steps_without_a_pending_sign_in(portal: ProfileHarness) -> None:
    stranger = portal.browser()
    assert (await stranger.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 401
    signed_in = await portal.signed_in()
    assert (await signed_in.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 409


async def _failures(portal: ProfileHarness, browser) -> int:  # type: ignore[no-untyped-def]
    """The pending sign-in's reserved attempts, read from its row."""
    id_hash = hashlib.sha256((browser.cookie("portal_session") or "").encode()).digest()
    return await portal.db.fetchval("SELECT second_factor_failures FROM profile.sessions WHERE id_hash = $1",
                                    id_hash)


async def test_an_attempt_loads_its_pending_sign_in_live(portal: ProfileHarness) -> None:
    """The attempt's own statement loads the pending sign-in (the middleware leaves it the load): it holds
    the load's rules — CSRF first, the pending timeout, the idle timeout, the account active — and a
    refused attempt takes no attempt from the count."""
    await portal.enable_totp(portal.demo_id)
    browser = await _pending(portal)
    status, body = await browser.post("/api/auth/login/totp", {"code": TOTP_CODE}, headers={"X-CSRF-Token": "x"})
    assert status == 403 and body["type"].endswith("csrf-failed")
    assert (await browser.post("/api/auth/login/totp", {"code": TOTP_CODE}, csrf=False))[0] == 403
    assert await _failures(portal, browser) == 0, "a refused request takes no attempt"
    await portal.db.execute("UPDATE profile.sessions SET created_at = now() - interval '11 minutes' "
                            "WHERE user_id = $1", uuid.UUID(portal.demo_id))
    status, body = await browser.post("/api/auth/login/totp", {"code": TOTP_CODE})
    assert status == 401 and body["type"].endswith("sign-in-expired")
    assert await _failures(portal, browser) == 0

    idle = await _pending(portal)
    await portal.db.execute("UPDATE profile.sessions SET last_seen_at = now() - interval '31 minutes' "
                            "WHERE user_id = $1", uuid.UUID(portal.demo_id))
    status, body = await idle.post("/api/auth/login/totp", {"code": TOTP_CODE})
    assert status == 401 and body["type"].endswith("not-signed-in")
    assert await _failures(portal, idle) is None, "an idle session is deleted on sight"

    deactivated = await _pending(portal)
    await portal.db.execute("UPDATE profile.users SET active = false WHERE id = $1", uuid.UUID(portal.demo_id))
    try:
        status, body = await deactivated.post("/api/auth/login/totp", {"code": TOTP_CODE})
        assert status == 401 and body["type"].endswith("not-signed-in")
        assert await _failures(portal, deactivated) == 0
    finally:
        await portal.db.execute("UPDATE profile.users SET active = true WHERE id = $1", uuid.UUID(portal.demo_id))
    assert (await deactivated.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200


async def test_reauth_with_a_totp_code(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    browser = await _pending(portal)
    assert (await browser.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200
    status, body = await browser.post("/api/auth/reauth", {"totp_code": "999999"})
    assert status == 422 and "totp_code" in body["errors"]
    assert (await browser.post("/api/auth/reauth", {"totp_code": TOTP_CODE}))[0] == 204


async def test_mfa_down_fails_closed_for_two_factor_accounts(portal: ProfileHarness, stack_env: dict[str, str]) -> None:
    from tests.support.services import running_service

    async with running_service("profile", stack_env, MFA_URL="http://127.0.0.1:9") as client:
        # No two-factor latch: mfa has no factor for this user and is not needed to sign in.
        response = await client.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": PASSWORD})
        assert response.status == 200 and (await response.json()) == {"state": "signed_in"}
        await portal.raise_two_factor(portal.demo_id)
        client.session.cookie_jar.clear()  # a new visitor (no session, so no CSRF token needed)
        response = await client.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": PASSWORD})
        assert response.status == 503
        assert (await response.json())["status"] == 503


async def test_reauth_with_a_security_key(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    await portal.add_key(portal.demo_id)
    status, body = await browser.post("/api/auth/reauth", {"credential": {"id": "good-key"}})
    assert status == 422 and "credential" in body["errors"], "no challenge asked for yet"
    status, options = await browser.post("/api/auth/reauth/webauthn/options")
    assert status == 200 and "challenge" in options
    before = browser.cookie("portal_session")
    assert (await browser.post("/api/auth/reauth", {"credential": {"id": "good-key"}}))[0] == 204
    assert browser.cookie("portal_session") != before


async def test_the_two_factor_latch_decides_whether_sign_in_asks_mfa(portal: ProfileHarness) -> None:
    """mfa raises profile's latch before it commits a first factor; sign-in asks mfa only while it is up."""
    factors_path = f"/internal/users/{portal.demo_id}/factors"
    await portal.browser().login(DEMO_EMAIL)  # no latch: signed in without a call to mfa
    assert factors_path not in [path for path, _ in portal.mfa.calls]

    await portal.enable_totp(portal.demo_id)  # latch first, then the factor, as mfa does
    await _pending(portal)
    assert factors_path in [path for path, _ in portal.mfa.calls]
    row = await portal.db.fetchrow("SELECT two_factor_enabled, two_factor_changed_at FROM profile.users "
                                                "WHERE id = $1", uuid.UUID(portal.demo_id))
    assert row["two_factor_enabled"] and row["two_factor_changed_at"] is not None

    # A latch left up by an enable that mfa then rolled back (the app gone, the latch raised again, nothing
    # committed): mfa has no factor, so the password suffices — asking mfa each time (that answer is never kept).
    portal.mfa.totp.discard(portal.demo_id)
    await portal.raise_two_factor(portal.demo_id)
    for asked in (2, 3):
        assert await portal.browser().login(DEMO_EMAIL) == {"state": "signed_in"}
        assert [path for path, _ in portal.mfa.calls].count(factors_path) == asked


async def test_only_mfa_may_raise_the_latch(portal: ProfileHarness) -> None:
    path = f"/internal/users/{portal.demo_id}/two-factor-on"
    at = {"at": "2026-12-02T10:00:00+00:00"}
    assert (await portal.client.post(path, json=at)).status == 401
    wrong_audience = tokens.service_authorization(portal.env["SERVICE_AUTH_KEY"], issuer="profile", audience="mfa")
    assert (await portal.client.post(path, json=at, headers=wrong_audience)).status == 401
    mfa = tokens.service_authorization(portal.env["SERVICE_AUTH_KEY"], issuer="mfa", audience="profile")
    for bad in ({}, {"at": "yesterday"}, {"at": "2026-12-02T10:00:00"}):
        response = await portal.client.post(path, json=bad, headers=mfa)
        assert response.status == 400 and response.content_type == "application/problem+json"
    response = await portal.client.post("/internal/users/not-a-uuid/two-factor-on", json=at, headers=mfa)
    assert response.status == 400
    assert not await portal.db.fetchval("SELECT two_factor_enabled FROM profile.users WHERE id = $1",
                                        uuid.UUID(portal.demo_id))


async def _latched(portal: ProfileHarness) -> bool:
    return await portal.db.fetchval("SELECT two_factor_enabled FROM profile.users WHERE id = $1",
                                    uuid.UUID(portal.demo_id))


async def test_only_newer_mfa_events_lower_the_latch(portal: ProfileHarness) -> None:
    """A disable that happened before the latch went up (delivered late, e.g. after a broker outage) must
    not lower it: that would let a password alone past the account's new factor."""
    await portal.raise_two_factor(portal.demo_id)
    raised_at = await portal.db.fetchval("SELECT two_factor_changed_at FROM profile.users WHERE id = $1",
                                         uuid.UUID(portal.demo_id))
    earlier = raised_at - timedelta(minutes=1)
    await portal.deliver(TwoFactorDisabled(user_id=portal.demo_id, method="totp"), earlier)
    await portal.deliver(MfaResetByAdmin(user_id=portal.demo_id, admin_id=portal.admin_id), earlier)
    assert await _latched(portal)
    await portal.browser().login(DEMO_EMAIL)
    assert f"/internal/users/{portal.demo_id}/factors" in [path for path, _ in portal.mfa.calls], "mfa was asked"

    await portal.deliver(TwoFactorDisabled(user_id=portal.demo_id, method="totp"), datetime.now(UTC))
    assert not await _latched(portal)
