"""The authenticator app through the public API and profile's internal checks, against real Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import unquote

import aio_pika
import pyotp
from portal_shared import broker
from portal_shared.events import Envelope, UserCreated, UserUpdated, encode

from tests.integration.mfa.conftest import PASSWORD, Mfa, new_user, next_code, wait_for

REFUSED = {"ok": False, "recovery_codes_remaining": None}  # a refused check counts no codes


async def publish(mfa: Mfa, event: UserCreated | UserUpdated) -> None:
    connection = await aio_pika.connect(mfa.env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await broker.declare_exchange(channel)
        envelope = Envelope.wrap(event, source="profile")
        await exchange.publish(aio_pika.Message(
            encode(envelope), message_id=envelope.id, type=envelope.type, content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=envelope.type)
    finally:
        await connection.close()


async def test_setup_labels_the_app_with_the_email_from_profile_events(mfa: Mfa) -> None:
    user = new_user()
    await publish(mfa, UserCreated(user_id=user, email="first@client.example", name="First"))
    await publish(mfa, UserUpdated(user_id=user, email="demo@client.example", name="Demo User"))

    async def projected() -> bool:
        return await mfa.db.fetchval("SELECT email FROM mfa.users WHERE user_id = $1", user) == "demo@client.example"

    assert await wait_for(projected)
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user, email="token@client.example")
    assert status == 200
    assert unquote(setup["otpauth_uri"]).startswith("otpauth://totp/Client Portal:demo@client.example?")
    assert f"secret={setup['secret']}" in setup["otpauth_uri"] and "issuer=Client%20Portal" in setup["otpauth_uri"]
    assert setup["qr_svg"].startswith("<svg")
    # At rest the secret is AES-GCM ciphertext under the named key, never the secret itself.
    row = await mfa.db.fetchrow("SELECT key_id, secret FROM mfa.totp_secrets WHERE user_id = $1", user)
    assert row["key_id"] == "k1" and setup["secret"].encode() not in bytes(row["secret"])
    assert await mfa.events(user) == []  # a pending setup is not a change yet


async def test_enable_sign_in_replay_and_disable(mfa: Mfa) -> None:
    user = new_user()
    status, first = await mfa.call("POST", "/api/mfa/totp/setup", user)
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)  # a restart replaces the pending secret
    assert status == 200 and setup["secret"] != first["secret"]
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": pyotp.TOTP(first["secret"]).now()})
    assert status == 422 and body["errors"]["code"]
    code = pyotp.TOTP(setup["secret"]).now()
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": code})
    assert status == 200 and len(body["recovery_codes"]) == 10
    assert mfa.profile.latched == [user]  # profile's two-factor latch went up before the commit
    assert await mfa.events(user) == [("mfa.two_factor_enabled",
                                       {"user_id": user, "method": "totp", "key_id": None, "name": None})]

    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["two_factor_enabled"] and view["totp"]["enabled"] and view["totp"]["enabled_at"].endswith("Z")
    assert view["recovery_codes"] == {"remaining": 10}
    assert (await mfa.call("POST", "/api/mfa/totp/setup", user))[0] == 409
    assert (await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": code}))[0] == 409
    status, factors = await mfa.internal("GET", f"/internal/users/{user}/factors")
    assert factors == {"two_factor_enabled": True, "second_factors": ["totp", "recovery_code"],
                       "recovery_codes_remaining": 10}

    # The code that enabled the app cannot sign in: its time step was used.
    assert (await mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": code}))[1] == REFUSED
    later = next_code(setup["secret"])
    assert (await mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": later}))[1] == {
        "ok": True, "recovery_codes_remaining": 10}
    assert (await mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": later}))[1] == REFUSED
    assert (await mfa.internal("POST", "/internal/verify/totp", {"user_id": new_user(), "code": later}))[1] == REFUSED

    status, body = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": "wrong"})
    assert status == 422 and body["errors"]["password"]
    status, body = await mfa.call("POST", "/api/mfa/totp/disable", user, {}, auth_age=3600)
    assert status == 422 and body["errors"]["password"]
    status, _ = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": PASSWORD})
    assert status == 204
    assert mfa.profile.calls == [user, user]
    events = await mfa.events(user)
    assert [t for t, _ in events] == ["mfa.two_factor_enabled", "mfa.two_factor_disabled"]
    assert events[-1][1] == {"user_id": user, "method": "totp", "key_id": None, "name": None}
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view == {"two_factor_enabled": False, "totp": {"enabled": False, "enabled_at": None},
                    "security_keys": [], "recovery_codes": None}
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.recovery_codes WHERE user_id = $1", user) == 0
    assert (await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": PASSWORD}))[0] == 409
    assert (await mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": later}))[1] == REFUSED


async def test_two_factor_is_not_turned_on_while_profile_cannot_raise_its_latch(mfa: Mfa) -> None:
    """Profile's password sign-in asks mfa only when its latch is up: no first factor may exist without it."""
    user = new_user()
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)
    mfa.profile.down = True
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": pyotp.TOTP(setup["secret"]).now()})
    assert status == 503 and body["type"].endswith("/service-unavailable")
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["two_factor_enabled"] is False and await mfa.events(user) == []
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.recovery_codes WHERE user_id = $1", user) == 0

    mfa.profile.down = False  # back: the same pending setup now enables, latch first
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": next_code(setup["secret"])})
    assert status == 200 and mfa.profile.latched == [user]
    assert [t for t, _ in await mfa.events(user)] == ["mfa.two_factor_enabled"]


async def test_disable_without_password_after_recent_reauth(mfa: Mfa) -> None:
    user = new_user()
    await mfa.enable_totp(user)
    status, _ = await mfa.call("POST", "/api/mfa/totp/disable", user, None, auth_age=3600, reauth_age=60)
    assert status == 204
    assert mfa.profile.calls == []


async def test_a_pending_setup_expires_after_15_minutes(mfa: Mfa) -> None:
    user = new_user()
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)
    until = await mfa.db.fetchval("SELECT pending_until - created_at FROM mfa.totp_secrets WHERE user_id = $1", user)
    assert 899 <= until.total_seconds() <= 901
    await mfa.db.execute("UPDATE mfa.totp_secrets SET pending_until = now() - interval '1 second'")
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": pyotp.TOTP(setup["secret"]).now()})
    assert status == 409, body
    assert (await mfa.call("POST", "/api/mfa/totp/verify", new_user(), {"code": "123456"}))[0] == 409


async def test_concurrent_submissions_of_one_code_succeed_once(mfa: Mfa) -> None:
    user = new_user()
    secret, _ = await mfa.enable_totp(user)
    code = next_code(secret)
    results = await asyncio.gather(*(
        mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": code}) for _ in range(20)))
    assert sorted(json.dumps(body) for _, body in results) == [json.dumps(REFUSED)] * 19 + [
        json.dumps({"ok": True, "recovery_codes_remaining": 10})]


async def test_totp_added_beside_a_key_is_totp_enabled_without_codes(mfa: Mfa) -> None:
    user = new_user()
    await mfa.enable_totp(user)
    status, _ = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": PASSWORD})
    # A key row stands in for a registered key here; the key flows are in test_mfa_webauthn_flows.py.
    await mfa.db.execute(
        "INSERT INTO mfa.webauthn_credentials (id, user_id, credential_id, public_key, sign_count, aaguid, backed_up,"
        " passkey, name) VALUES ($1, $2, $3, $4, 0, $5, false, false, 'Key')",
        uuid.uuid4(), user, b"cred-" + user.encode(), b"pk", "00000000-0000-0000-0000-000000000000")
    status, setup = await mfa.call("POST", "/api/mfa/totp/setup", user)
    status, body = await mfa.call("POST", "/api/mfa/totp/verify", user, {"code": pyotp.TOTP(setup["secret"]).now()})
    assert (status, body) == (200, {"recovery_codes": None})
    assert (await mfa.events(user))[-1] == ("mfa.totp_enabled", {"user_id": user})
    status, _ = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": PASSWORD})
    assert status == 204
    assert (await mfa.events(user))[-1] == ("mfa.totp_disabled", {"user_id": user})
