"""The sign-in throttle with device cookies (OWASP "Slow brute-force / device cookies"), on real Postgres and
RabbitMQ: a stranger's guesses lock strangers out, never the owner's known browsers; guessing stays bounded
per account (untrusted counter) and per known device; a passkey is never refused for password failures."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from typing import Any

import asyncpg
from profile_service import devices, sessions
from profile_service.models import SIGNED_IN
from profile_service.repository import users as users_repo
from profile_service.signin import HowSignedIn, completed
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, TOTP_CODE, Browser, ProfileHarness

from tests.support.services import running_service

DEVICE = "portal_device"


async def _wrong(browser: Browser, times: int, email: str = DEMO_EMAIL) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for i in range(times):
        status, body = await browser.post("/api/auth/login", {"email": email, "password": f"guess-{i}"})
        assert status == 401, (status, body)
    return body


async def _untrusted(portal: ProfileHarness, user_id: str | None = None) -> asyncpg.Record:
    return await portal.db.fetchrow("SELECT failed_attempts, locked_until > now() AS locked FROM profile.users "
                                    "WHERE id = $1", uuid.UUID(user_id or portal.demo_id))


async def _device_row(portal: ProfileHarness, browser: Browser, user_id: str | None = None) -> asyncpg.Record | None:
    raw = browser.cookie(DEVICE) or ""
    return await portal.db.fetchrow(
        "SELECT failed_attempts, locked_until > now() AS locked FROM profile.devices "
        "WHERE token_hash = $1 AND user_id = $2", hashlib.sha256(raw.encode()).digest(),
        uuid.UUID(user_id or portal.demo_id))


async def _passkey(portal: ProfileHarness, browser: Browser) -> dict[str, Any]:
    """A passkey sign-in (the stand-in mfa's passkey assertion for the demo user)."""
    assert (await browser.post("/api/auth/login/passkey/options"))[0] == 200
    status, body = await browser.post("/api/auth/login/passkey",
                                      {"credential": {"id": "passkey", "user": portal.demo_id}})
    assert status == 200, (status, body)
    return body


def _with_device_cookie(portal: ProfileHarness, raw: str) -> Browser:
    """A new browser holding `raw` as its device cookie (a copy, or a value it made up)."""
    browser = portal.browser()
    browser.http.cookie_jar.update_cookies({DEVICE: raw})
    return browser


async def test_a_completed_sign_in_sets_a_long_lived_hashed_device_cookie(portal: ProfileHarness) -> None:
    browser = portal.browser()
    status, _, response = await browser.call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert status == 200
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith(f"{DEVICE}="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/api/auth" in cookie
    assert "Secure" not in cookie, "http portal: Secure only when PORTAL_BASE_URL is https"
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 360 * 86400 <= max_age <= 370 * 86400, "about a year"
    raw = browser.cookie(DEVICE) or ""
    assert len(raw) == 43, "32 random bytes, base64url"
    stored = await portal.db.fetch("SELECT token_hash FROM profile.devices WHERE user_id = $1",
                                   uuid.UUID(portal.demo_id))
    assert [r["token_hash"] for r in stored] == [hashlib.sha256(raw.encode()).digest()], "stored only hashed"

    # One value per browser: signing in to another account re-keys the browser, and both accounts know it.
    await browser.login(ADMIN_EMAIL)
    again = browser.cookie(DEVICE) or ""
    assert again != raw
    assert await _device_row(portal, browser) is not None
    assert await _device_row(portal, browser, portal.admin_id) is not None
    assert await portal.db.fetchval("SELECT count(*) FROM profile.devices") == 2


async def test_a_pending_sign_in_is_not_a_known_device_yet(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    browser = portal.browser()
    assert (await browser.login(DEMO_EMAIL))["state"] == "second_factor_required"
    assert browser.cookie(DEVICE) is None, "the password alone does not make a known device"
    assert (await browser.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200
    assert await _device_row(portal, browser) is not None


async def test_a_strangers_guesses_never_lock_out_the_owners_browser(portal: ProfileHarness) -> None:
    owner = await portal.signed_in()
    stranger = portal.browser()
    wrong_body = await _wrong(stranger, 12)
    assert (await _untrusted(portal))["locked"]
    status, body = await stranger.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert (status, body) == (401, wrong_body), "locked strangers get exactly a wrong password's answer"
    other_stranger = portal.browser()
    assert (await other_stranger.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 401

    # The owner's browser carries its device cookie: its own counter, not the untrusted lock.
    assert await owner.login(DEMO_EMAIL) == {"state": "signed_in"}
    assert (await owner.get("/api/profile"))[0] == 200
    # The owner's sign-in does not reopen the door for strangers.
    assert (await stranger.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 401
    assert "account_throttled" in await portal.audit_types(portal.demo_id)


async def test_the_untrusted_counter_bounds_a_strangers_guesses(portal: ProfileHarness) -> None:
    """Nine wrong guesses leave the door open; the tenth locks it, even against the right password."""
    stranger = portal.browser()
    await _wrong(stranger, 9)
    assert (await _untrusted(portal))["failed_attempts"] == 9 and not (await _untrusted(portal))["locked"]
    await _wrong(stranger, 1)
    assert (await _untrusted(portal))["locked"]
    assert (await stranger.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 401
    # Guesses during the lock are refused without counting (the lock grows with real guesses only).
    await _wrong(stranger, 3)
    assert (await _untrusted(portal))["failed_attempts"] == 10


async def test_failures_from_the_owners_device_lock_that_device_only(portal: ProfileHarness) -> None:
    laptop = await portal.signed_in()
    phone = await portal.signed_in()
    wrong_body = await _wrong(laptop, 10)
    assert (await _device_row(portal, laptop))["locked"]
    status, body = await laptop.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert (status, body) == (401, wrong_body), "a locked device gets exactly a wrong password's answer"
    assert "device_throttled" in await portal.audit_types(portal.demo_id)

    assert await phone.login(DEMO_EMAIL) == {"state": "signed_in"}, "another known device is not locked"
    assert not (await _device_row(portal, phone))["locked"]
    untrusted = await _untrusted(portal)
    assert untrusted["failed_attempts"] == 0 and not untrusted["locked"], "the untrusted counter is untouched"
    assert (await portal.browser().post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 200
    assert (await laptop.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 401, \
        "other browsers' sign-ins do not clear this device's lock"


async def test_a_forged_or_foreign_device_cookie_counts_as_untrusted(portal: ProfileHarness) -> None:
    admins_browser = await portal.signed_in(ADMIN_EMAIL)  # a real device cookie, but of another account
    owner = await portal.signed_in()
    copied_before_rotation = owner.cookie(DEVICE) or ""
    await owner.login(DEMO_EMAIL)  # every completed sign-in re-keys the browser
    assert owner.cookie(DEVICE) != copied_before_rotation
    guessers = [_with_device_cookie(portal, secrets.token_urlsafe(32)),
                _with_device_cookie(portal, "not a device cookie"),
                _with_device_cookie(portal, admins_browser.cookie(DEVICE) or ""),
                _with_device_cookie(portal, copied_before_rotation)]
    for i in range(10):
        await _wrong(guessers[i % len(guessers)], 1)
    assert (await _untrusted(portal))["locked"]
    for guesser in guessers:
        status, _ = await guesser.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
        assert status == 401
    assert await owner.login(DEMO_EMAIL) == {"state": "signed_in"}
    assert await portal.db.fetchval("SELECT count(*) FROM profile.devices WHERE failed_attempts > 0") == 0


async def test_a_passkey_signs_in_while_password_locks_are_on(portal: ProfileHarness) -> None:
    await portal.add_key(portal.demo_id)
    known = portal.browser()
    await _passkey(portal, known)  # a known device now
    await _wrong(known, 10)
    await _wrong(portal.browser(), 10)
    assert (await _untrusted(portal))["locked"] and (await _device_row(portal, known))["locked"]

    stranger = portal.browser()  # no device cookie: the untrusted lock is on
    assert await _passkey(portal, stranger) == {"state": "signed_in", "recovery_codes_remaining": 0}
    assert (await stranger.get("/api/profile"))[1]["email"] == DEMO_EMAIL
    assert await _passkey(portal, known) == {"state": "signed_in", "recovery_codes_remaining": 0}, "nor a device lock"
    assert not (await _device_row(portal, known))["locked"], "a completed sign-in clears its device's counter"


async def test_second_factor_failures_count_on_the_known_device(portal: ProfileHarness) -> None:
    """A right password then wrong codes: counted like wrong passwords, on the browser's known device."""
    await portal.enable_totp(portal.demo_id)
    owner = portal.browser()
    await owner.login(DEMO_EMAIL)
    assert (await owner.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200
    other = portal.browser()
    await other.login(DEMO_EMAIL)
    assert (await other.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200
    for _ in range(2):  # each pending sign-in allows 5 attempts
        assert (await owner.login(DEMO_EMAIL))["state"] == "second_factor_required"
        for _ in range(5):
            assert (await owner.post("/api/auth/login/totp", {"code": "222222"}))[0] == 401
    assert (await _device_row(portal, owner))["locked"]
    assert (await owner.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 401
    assert (await _untrusted(portal))["failed_attempts"] == 0
    assert (await other.login(DEMO_EMAIL))["state"] == "second_factor_required"
    assert (await other.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200


async def test_a_lock_refuses_the_pending_sign_ins_made_before_it(portal: ProfileHarness) -> None:
    """Knowing the password, an attacker could start many sign-ins first and guess codes on each later:
    the second step reads the device's lock as it is then, not as the first step saw it."""
    await portal.enable_totp(portal.demo_id)
    owner = portal.browser()
    await owner.login(DEMO_EMAIL)
    assert (await owner.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200  # a known device now
    early = portal.browser()  # the same browser (its device cookie), a sign-in started before the lock
    early.http.cookie_jar.update_cookies({"portal_device": owner.cookie("portal_device") or ""})
    assert (await early.login(DEMO_EMAIL))["state"] == "second_factor_required"
    for _ in range(2):
        assert (await owner.login(DEMO_EMAIL))["state"] == "second_factor_required"
        for _ in range(5):
            assert (await owner.post("/api/auth/login/totp", {"code": "222222"}))[0] == 401
    assert (await _device_row(portal, owner))["locked"]
    assert (await early.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 401, "the lock refuses it"
    assert (await early.get("/api/profile"))[0] == 401


async def test_second_factor_failures_count_toward_the_account_throttle(portal: ProfileHarness) -> None:
    """The counter is per account, not per flow: two pending sign-ins x 5 wrong codes lock the account."""
    await portal.enable_totp(portal.demo_id)
    for _ in range(2):
        browser = portal.browser()
        assert (await browser.login(DEMO_EMAIL))["state"] == "second_factor_required"
        for _ in range(5):
            assert (await browser.post("/api/auth/login/totp", {"code": "222222"}))[0] == 401
    status, body = await portal.browser().post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert status == 401 and body["type"].endswith("invalid-credentials")
    assert await portal.db.fetchval("SELECT locked_until > now() FROM profile.users WHERE id = $1",
                                    uuid.UUID(portal.demo_id))


async def test_reauth_rotates_the_session_and_counts_failures(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    before = browser.cookie("portal_session")
    status, body = await browser.post("/api/auth/reauth", {"password": "wrong-password"})
    assert status == 422 and "password" in body["errors"]
    # Counted on the session's browser, a known device of the account; the untrusted counter is untouched.
    assert (await _device_row(portal, browser))["failed_attempts"] == 1
    assert (await _untrusted(portal))["failed_attempts"] == 0
    assert (await browser.post("/api/auth/reauth", {"password": PASSWORD}))[0] == 204
    assert (await _device_row(portal, browser))["failed_attempts"] == 0, "a success clears the device's counter"
    assert browser.cookie("portal_session") != before, "a step-up gets a new session id"
    old = portal.browser()
    old.http.cookie_jar.update_cookies({"portal_session": before or ""})
    assert (await old.get("/api/profile"))[0] == 401
    assert await portal.db.fetchval("SELECT reauth_at IS NOT NULL FROM profile.sessions WHERE user_id = $1",
                                    uuid.UUID(portal.demo_id))
    assert (await browser.get("/api/profile"))[0] == 200


async def test_reauth_failures_lock_the_sessions_device(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    await portal.enable_totp(portal.demo_id)
    for _ in range(5):
        assert (await browser.post("/api/auth/reauth", {"password": "wrong-password"}))[0] == 422
    for _ in range(5):
        assert (await browser.post("/api/auth/reauth", {"totp_code": "999999"}))[0] == 422
    assert (await _device_row(portal, browser))["locked"]
    status, body = await browser.post("/api/auth/reauth", {"totp_code": TOTP_CODE})
    assert status == 422 and "totp_code" in body["errors"], "a locked device's right code is refused too"
    assert (await _untrusted(portal))["failed_attempts"] == 0


async def test_is_known_tells_a_new_device(portal: ProfileHarness) -> None:
    """The service function a "new device sign-in" email will use."""
    browser = await portal.signed_in()
    conn = await asyncpg.connect(portal.env["PROFILE_DATABASE_URL"], server_settings={"search_path": "profile"})
    try:
        assert await devices.is_known(conn, browser.cookie(DEVICE), portal.demo_id)
        assert not await devices.is_known(conn, browser.cookie(DEVICE), portal.admin_id)
        assert not await devices.is_known(conn, secrets.token_urlsafe(32), portal.demo_id)
        assert not await devices.is_known(conn, None, portal.demo_id)
    finally:
        await conn.close()


async def test_ten_failures_lock_the_account_across_browsers_ips_and_restarts(portal: ProfileHarness) -> None:
    attacker = portal.browser()
    for i in range(10):
        status, body = await attacker.post("/api/auth/login", {"email": DEMO_EMAIL, "password": f"guess-{i}"},
                                           headers={"X-Real-IP": f"203.0.113.{i}"})
        assert status == 401
    wrong_body = body
    user = portal.browser()
    status, body = await user.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD},
                                   headers={"X-Real-IP": "198.51.100.7"})
    assert (status, body) == (401, wrong_body), "a locked account answers exactly like a wrong password"
    first_lock = await portal.db.fetchval("SELECT locked_until - now() FROM profile.users WHERE id = $1",
                                          uuid.UUID(portal.demo_id))
    assert first_lock.total_seconds() > 0
    assert "account_throttled" in await portal.audit_types(portal.demo_id)

    # The counter lives in the database: a restarted service still refuses.
    await portal.client.close()
    async with running_service("profile", portal.env, MFA_URL=portal.mfa_url) as again:
        response = await again.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": PASSWORD})
        assert response.status == 401

    # When the lock has passed, one more failure locks again for longer (the period grows).
    await portal.db.execute("UPDATE profile.users SET locked_until = now() - interval '1 second' WHERE id = $1",
                            uuid.UUID(portal.demo_id))
    async with running_service("profile", portal.env, MFA_URL=portal.mfa_url) as again:
        response = await again.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": "guess-again"})
        assert response.status == 401
        second_lock = await portal.db.fetchval("SELECT locked_until - now() FROM profile.users WHERE id = $1",
                                               uuid.UUID(portal.demo_id))
        assert second_lock > first_lock
        await portal.db.execute("UPDATE profile.users SET locked_until = now() - interval '1 second' WHERE id = $1",
                                uuid.UUID(portal.demo_id))
        response = await again.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": PASSWORD})
        assert response.status == 200
    assert await portal.db.fetchval("SELECT failed_attempts FROM profile.users WHERE id = $1",
                                    uuid.UUID(portal.demo_id)) == 0


async def test_a_completed_reset_unlocks_the_owners_devices(portal: ProfileHarness) -> None:
    from urllib.parse import parse_qs, urlsplit

    laptop = await portal.signed_in()
    await _wrong(laptop, 10)
    assert (await _device_row(portal, laptop))["locked"]
    anyone = portal.browser()
    assert (await anyone.post("/api/auth/password-reset", {"email": DEMO_EMAIL}))[0] == 202
    for _ in range(100):
        events = await portal.events("profile.password_reset_requested")
        if events:
            break
        await asyncio.sleep(0.05)
    token = parse_qs(urlsplit(events[-1]["data"]["reset_url"]).query)["token"][0]
    new_password = "a brand new passphrase 5"
    status, _ = await anyone.post("/api/auth/password-reset/confirm", {
        "token": token, "new_password": new_password, "confirm_password": new_password})
    assert status == 204
    assert not (await _device_row(portal, laptop))["locked"], "the reset proved the mailbox: the device is clear"
    assert (await laptop.post("/api/auth/login", {"email": DEMO_EMAIL, "password": new_password}))[0] == 200


async def test_parallel_sign_ins_of_one_account_never_deadlock(portal: ProfileHarness) -> None:
    """Each completed sign-in forgets the account's least recently used devices beyond the cap; sign-ins of
    one account at once (SSO callbacks of one user, 8 at a time, in the SSO bench) locked those rows in
    different orders, and one died of a deadlock: a 500. Here the completing transaction of a sign-in
    (its session, audit entry, device and activity), 8 at once for 6 s, with the account at its cap."""
    user_id = uuid.UUID(portal.demo_id)
    await portal.db.execute(
        "INSERT INTO profile.devices (token_hash, user_id, created_at, last_sign_in_at) "
        "SELECT sha256(g::text::bytea), $1, now(), now() - make_interval(secs => g) "
        "FROM generate_series(1, $2::int) g", user_id, devices.MAX_DEVICES_PER_ACCOUNT)
    pool = await asyncpg.create_pool(portal.env["PROFILE_DATABASE_URL"], min_size=8, max_size=8,
                                     server_settings={"search_path": "profile"})
    user = await users_repo.get(pool, portal.demo_id)
    assert user is not None
    failures: list[BaseException] = []
    done = 0

    async def sign_ins(until: float) -> None:
        nonlocal done
        while asyncio.get_running_loop().time() < until:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    _, session_id = await sessions.start(conn, user_id=user.id, state=SIGNED_IN, user_agent="test",
                                                         ip="192.0.2.9", method="sso", audit=("signed_in", "sso"))
                    await completed(conn, user, None, None, session_id=session_id,
                                    how=HowSignedIn("sso", "192.0.2.9", "test"))
                done += 1
            except Exception as exc:  # counted, then asserted empty
                failures.append(exc)

    try:
        until = asyncio.get_running_loop().time() + 6
        await asyncio.gather(*(sign_ins(until) for _ in range(8)))
    finally:
        await pool.close()
    assert done > 100 and failures == [], (done, failures[:3])
    count = await portal.db.fetchval("SELECT count(*) FROM profile.devices WHERE user_id = $1", user_id)
    assert count == devices.MAX_DEVICES_PER_ACCOUNT  # serialized: each one leaves the account at its cap
