"""Security keys and passkeys end to end with a software authenticator: registration, sign-in checks
(replay, ceremony type, ownership, userHandle, counters), passkeys, rename and removal with their events."""

from __future__ import annotations

from typing import Any

from tests.integration.mfa.conftest import Mfa, new_user, next_code
from tests.support.soft_authenticator import SoftAuthenticator, b64url


async def register(mfa: Mfa, user: str, auth: SoftAuthenticator, name: str = "YubiKey", **kwargs: Any
                   ) -> tuple[int, Any]:
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user)
    assert status == 200, options
    credential = auth.create(options, **kwargs)
    return await mfa.call("POST", "/api/mfa/webauthn/register", user, {"credential": credential, "name": name})


async def sign_in(mfa: Mfa, user: str | None, auth: SoftAuthenticator, **kwargs: Any) -> dict[str, Any]:
    status, body = await mfa.internal("POST", "/internal/webauthn/options", {"user_id": user})
    assert status == 200, body
    credential = auth.get(body["options"], **kwargs)
    status, result = await mfa.internal("POST", "/internal/verify/webauthn", {
        "challenge_id": body["challenge_id"], "user_id": user, "credential": credential})
    assert status == 200, result
    return {**result, "_options": body, "_credential": credential}


async def test_register_first_key_turns_two_factor_on(mfa: Mfa) -> None:
    user = new_user()
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user)
    assert options["extensions"] == {"credProps": True}
    assert options["rp"] == {"name": "Client Portal", "id": "localhost"}
    assert options["attestation"] == "none" and options["excludeCredentials"] == []
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["user"]["id"] == b64url(user.encode())

    first = SoftAuthenticator()
    status, body = await register(mfa, user, first, name="  Laptop passkey  ")
    assert status == 201, body
    key = body["key"]
    assert key["name"] == "Laptop passkey" and key["passkey"] is True and key["last_used_at"] is None
    assert len(body["recovery_codes"]) == 10
    assert mfa.profile.latched == [user]  # the first key raised profile's two-factor latch
    assert await mfa.events(user) == [("mfa.two_factor_enabled", {"user_id": user, "method": "webauthn",
                                                                  "key_id": key["id"], "name": "Laptop passkey"})]

    second = SoftAuthenticator(discoverable=False)
    status, body = await register(mfa, user, second, name="Backup key")
    assert status == 201 and body["recovery_codes"] is None and body["key"]["passkey"] is False
    assert mfa.profile.latched == [user]  # a second key: two-factor was on already
    assert (await mfa.events(user))[-1] == ("mfa.security_key_added", {
        "user_id": user, "key_id": body["key"]["id"], "name": "Backup key"})
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user)
    assert {c["id"] for c in options["excludeCredentials"]} == {b64url(first.credential_id),
                                                                b64url(second.credential_id)}
    stored = await mfa.db.fetchrow("SELECT transports, aaguid, backed_up FROM mfa.webauthn_credentials "
                                   "WHERE credential_id = $1", first.credential_id)
    assert stored["transports"] == ["internal"] and stored["aaguid"] == "00000000-0000-0000-0000-000000000000"

    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["two_factor_enabled"] and [k["name"] for k in view["security_keys"]] == ["Laptop passkey",
                                                                                         "Backup key"]
    status, factors = await mfa.internal("GET", f"/internal/users/{user}/factors")
    assert factors["second_factors"] == ["webauthn", "recovery_code"]


async def test_registration_refusals(mfa: Mfa) -> None:
    user = new_user()
    for name in ("", "   ", "x" * 65, None, 5):
        status, body = await register(mfa, user, SoftAuthenticator(), name=name)  # type: ignore[arg-type]
        assert status == 422 and body["errors"]["name"], name
    status, body = await register(mfa, user, SoftAuthenticator(), origin="https://evil.example")
    assert status == 422 and body["errors"]["credential"]
    status, body = await register(mfa, user, SoftAuthenticator(), rp_id="evil.example")
    assert status == 422
    # Replaying a registration response: its challenge was consumed by the first use.
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", user)
    auth = SoftAuthenticator()
    credential = auth.create(options)
    assert (await mfa.call("POST", "/api/mfa/webauthn/register", user, {"credential": credential, "name": "A"}))[0] \
        == 201
    assert (await mfa.call("POST", "/api/mfa/webauthn/register", user, {"credential": credential, "name": "A"}))[0] \
        == 422
    # Another user's registration challenge is not this user's.
    other, shared = new_user(), SoftAuthenticator()
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", other)
    credential = shared.create(options)
    assert (await mfa.call("POST", "/api/mfa/webauthn/register", user, {"credential": credential, "name": "B"}))[0] \
        == 422
    # A credential id already registered (here: to another user) is a conflict.
    assert (await register(mfa, other, shared, name="B"))[0] == 201
    status, body = await register(mfa, user, shared, name="B")
    assert status == 409, body
    for bad in ({"name": "x"}, {"name": "x", "credential": "nope"}, {"name": "x", "credential": {"response": {}}}):
        status, body = await mfa.call("POST", "/api/mfa/webauthn/register", user, bad)
        assert status == 422 and body["errors"]["credential"]


async def test_sign_in_checks(mfa: Mfa) -> None:
    alice, bob = new_user(), new_user()
    alice_key, bob_key = SoftAuthenticator(discoverable=False), SoftAuthenticator()
    assert (await register(mfa, alice, alice_key))[0] == 201
    assert (await register(mfa, bob, bob_key))[0] == 201

    result = await sign_in(mfa, alice, alice_key)
    assert (result["ok"], result["user_id"], result["recovery_codes_remaining"]) == (True, alice, 10)
    assert [c["id"] for c in result["_options"]["options"]["allowCredentials"]] == [b64url(alice_key.credential_id)]
    assert await mfa.db.fetchval("SELECT sign_count FROM mfa.webauthn_credentials WHERE credential_id = $1",
                                 alice_key.credential_id) == 1
    status, view = await mfa.call("GET", "/api/mfa", alice)
    assert view["security_keys"][0]["last_used_at"] is not None

    # Replayed response: the challenge is spent.
    status, replay = await mfa.internal("POST", "/internal/verify/webauthn", {
        "challenge_id": result["_options"]["challenge_id"], "user_id": alice, "credential": result["_credential"]})
    assert replay == {"ok": False, "user_id": None, "recovery_codes_remaining": None}
    # Bob's key on Alice's sign-in (a valid signature by someone else's credential).
    status, body = await mfa.internal("POST", "/internal/webauthn/options", {"user_id": alice})
    status, result = await mfa.internal("POST", "/internal/verify/webauthn", {
        "challenge_id": body["challenge_id"], "user_id": alice, "credential": bob_key.get(body["options"])})
    assert result == {"ok": False, "user_id": None, "recovery_codes_remaining": None}
    # A userHandle that names someone else.
    assert not (await sign_in(mfa, alice, alice_key, user_handle=bob.encode()))["ok"]
    # Counter regression (a cloned authenticator): the stored count is 1 or more by now.
    assert not (await sign_in(mfa, alice, alice_key, sign_count=1))["ok"]
    assert not (await sign_in(mfa, alice, alice_key, bad_signature=True))["ok"]
    assert not (await sign_in(mfa, alice, alice_key, origin="https://evil.example"))["ok"]
    assert not (await sign_in(mfa, alice, alice_key, rp_id="evil.example"))["ok"]
    assert (await sign_in(mfa, alice, alice_key, user_handle=None))["ok"]  # absent userHandle is fine

    # A registration challenge cannot be used for sign-in.
    status, options = await mfa.call("POST", "/api/mfa/webauthn/register/options", alice)
    status, body = await mfa.internal("POST", "/internal/webauthn/options", {"user_id": alice})
    status, result = await mfa.internal("POST", "/internal/verify/webauthn", {
        "challenge_id": body["challenge_id"], "user_id": alice, "credential": alice_key.get(options)})
    assert result["ok"] is False
    status, result = await mfa.internal("POST", "/internal/verify/webauthn", {
        "challenge_id": body["challenge_id"], "user_id": alice, "credential": {"garbage": True}})
    assert status == 200 and result["ok"] is False


async def test_passkeys_sign_in_alone_other_keys_do_not(mfa: Mfa) -> None:
    user = new_user()
    passkey, plain, unverified = (SoftAuthenticator(counter_step=0), SoftAuthenticator(discoverable=False),
                                  SoftAuthenticator(user_verified=False))
    for auth in (passkey, plain, unverified):
        assert (await register(mfa, user, auth))[0] == 201
    _status, view = await mfa.call("GET", "/api/mfa", user)
    assert [k["passkey"] for k in view["security_keys"]] == [True, False, False]

    result = await sign_in(mfa, None, passkey)
    assert (result["ok"], result["user_id"], result["recovery_codes_remaining"]) == (True, user, 10)
    assert result["_options"]["options"]["userVerification"] == "required"
    assert result["_options"]["options"]["allowCredentials"] == []
    assert (await sign_in(mfa, None, passkey))["ok"]  # synced passkeys report 0 every time: accepted
    assert not (await sign_in(mfa, None, plain))["ok"]
    assert not (await sign_in(mfa, None, unverified))["ok"]
    assert not (await sign_in(mfa, None, passkey, user_handle=None))["ok"]
    passkey.user_verified = False
    assert not (await sign_in(mfa, None, passkey))["ok"]
    passkey.user_verified = True
    # A user-bound challenge is not a passkey challenge.
    _, body = await mfa.internal("POST", "/internal/webauthn/options", {"user_id": user})
    _, result = await mfa.internal("POST", "/internal/verify/webauthn", {
        "challenge_id": body["challenge_id"], "user_id": None, "credential": passkey.get(body["options"])})
    assert result["ok"] is False


async def test_rename_and_remove(mfa: Mfa) -> None:
    user, other = new_user(), new_user()
    status, first = await register(mfa, user, SoftAuthenticator(), name="One")
    status, second = await register(mfa, user, SoftAuthenticator(), name="Two")
    key_id, second_id = first["key"]["id"], second["key"]["id"]
    status, body = await mfa.call("PATCH", f"/api/mfa/webauthn/{key_id}", user, {"name": "Renamed"})
    assert status == 200 and body["name"] == "Renamed" and body["id"] == key_id
    assert (await mfa.events(user))[-1] == ("mfa.security_key_renamed", {
        "user_id": user, "key_id": key_id, "name": "Renamed", "old_name": "One"})
    renamed_events = len(await mfa.events(user))
    assert (await mfa.call("PATCH", f"/api/mfa/webauthn/{key_id}", user, {"name": "Renamed"}))[0] == 200
    assert len(await mfa.events(user)) == renamed_events, "the same name again changes nothing, says nothing"
    assert (await mfa.call("PATCH", f"/api/mfa/webauthn/{key_id}", user, {"name": ""}))[0] == 422
    assert (await mfa.call("PATCH", f"/api/mfa/webauthn/{key_id}", other, {"name": "Mine"}))[0] == 404
    assert (await mfa.call("DELETE", f"/api/mfa/webauthn/{key_id}", other))[0] == 404
    events_before = len(await mfa.events(user))

    status, body = await mfa.call("DELETE", f"/api/mfa/webauthn/{key_id}", user, auth_age=601)
    assert status == 403 and body["type"].endswith("reauth-required")
    assert len(await mfa.events(user)) == events_before  # a refused delete emits nothing
    status, _ = await mfa.call("DELETE", f"/api/mfa/webauthn/{key_id}", user, auth_age=3600, reauth_age=60)
    assert status == 204
    assert (await mfa.events(user))[-1] == ("mfa.security_key_removed",
                                            {"user_id": user, "key_id": key_id, "name": "Renamed"})
    assert (await mfa.call("DELETE", f"/api/mfa/webauthn/{key_id}", user))[0] == 404
    status, _ = await mfa.call("DELETE", f"/api/mfa/webauthn/{second_id}", user)
    assert status == 204
    assert (await mfa.events(user))[-1] == ("mfa.two_factor_disabled", {
        "user_id": user, "method": "webauthn", "key_id": second_id, "name": "Two"})
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view == {"two_factor_enabled": False, "totp": {"enabled": False, "enabled_at": None},
                    "security_keys": [], "recovery_codes": None}
    assert [t for t, _ in await mfa.events(user)] == [
        "mfa.two_factor_enabled", "mfa.security_key_added", "mfa.security_key_renamed", "mfa.security_key_removed",
        "mfa.two_factor_disabled"]


async def test_every_check_answers_the_codes_left(mfa: Mfa) -> None:
    """Each verification answer says how many recovery codes remain after it passed (issue #17 item 2),
    so profile's sign-in needs no second call; the count is the one the factors call would give."""
    user, key = new_user(), SoftAuthenticator()
    status, body = await register(mfa, user, key)
    assert status == 201
    codes = body["recovery_codes"]
    secret, _ = await mfa.enable_totp(user)  # beside the key: no new codes
    for code in codes[:3]:
        status, spent = await mfa.internal("POST", "/internal/verify/recovery-code", {"user_id": user, "code": code})
        assert spent["ok"] is True
    assert spent["recovery_codes_remaining"] == spent["remaining"] == 7

    assert (await sign_in(mfa, user, key))["recovery_codes_remaining"] == 7
    assert (await sign_in(mfa, None, key))["recovery_codes_remaining"] == 7  # a passkey names its owner's count
    status, body = await mfa.internal("POST", "/internal/verify/totp", {"user_id": user, "code": next_code(secret)})
    assert (status, body) == (200, {"ok": True, "recovery_codes_remaining": 7})
    status, factors = await mfa.internal("GET", f"/internal/users/{user}/factors")
    assert factors["recovery_codes_remaining"] == 7
