"""POST /internal/users/{id}/undo: profile's "This wasn't me" undo of one reported mfa change.

A key by its id (its owner's only), the authenticator app only when it is the enrolment the event
reported (not a later re-enrolment), regenerated codes only those created by then; removing the last
factor turns two-factor off and voids the codes. No mfa event; idempotent; 400 for malformed input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.mfa.conftest import Mfa, new_user
from tests.integration.mfa.test_mfa_webauthn_flows import register
from tests.support.soft_authenticator import SoftAuthenticator


async def undo(mfa: Mfa, user: str, type_: str, at: str, key_id: str | None = None,
               event_id: str = "3b7e1c4e-0000-4000-8000-000000000001") -> dict[str, Any]:
    status, body = await mfa.internal("POST", f"/internal/users/{user}/undo",
                                      {"event_id": event_id, "type": type_, "key_id": key_id, "at": at})
    assert status == 200, body
    assert set(body) == {"undone", "two_factor_enabled", "at"}
    assert abs(datetime.fromisoformat(body["at"]) - datetime.now(UTC)) < timedelta(seconds=30)
    return body


async def last_event(mfa: Mfa, type_: str) -> tuple[str, dict[str, Any]]:
    """(occurred_at, data) of the newest outbox event of that type."""
    row = await mfa.db.fetchrow("SELECT body FROM mfa.outbox WHERE type = $1 ORDER BY created_at DESC, id DESC "
                                "LIMIT 1", type_)
    return row["body"]["occurred_at"], row["body"]["data"]


async def outbox_size(mfa: Mfa) -> int:
    return int(await mfa.db.fetchval("SELECT count(*) FROM mfa.outbox"))


async def codes(mfa: Mfa, user: str) -> int:
    return int(await mfa.db.fetchval("SELECT count(*) FROM mfa.recovery_codes WHERE user_id = $1", user))


def shifted(at: str, seconds: float) -> str:
    return (datetime.fromisoformat(at) + timedelta(seconds=seconds)).isoformat()


async def add_key(mfa: Mfa, user: str, name: str = "Key") -> str:
    status, body = await register(mfa, user, SoftAuthenticator(), name=name)
    assert status == 201, body
    return str(body["key"]["id"])


async def test_an_added_key_is_removed_other_factors_and_codes_stay(mfa: Mfa) -> None:
    user = new_user()
    await mfa.enable_totp(user)
    key_id = await add_key(mfa, user)
    at, data = await last_event(mfa, "mfa.security_key_added")
    assert data["key_id"] == key_id
    events = await outbox_size(mfa)

    body = await undo(mfa, user, "mfa.security_key_added", at, key_id)
    assert (body["undone"], body["two_factor_enabled"]) == (True, True)
    _, view = await mfa.call("GET", "/api/mfa", user)
    assert view["security_keys"] == [] and view["totp"]["enabled"] and view["recovery_codes"] == {"remaining": 10}
    assert await outbox_size(mfa) == events  # no mfa event: profile emits profile.change_undone

    again = await undo(mfa, user, "mfa.security_key_added", at, key_id)
    assert (again["undone"], again["two_factor_enabled"]) == (False, True)


async def test_the_only_key_removed_turns_two_factor_off_and_voids_the_codes(mfa: Mfa) -> None:
    user = new_user()
    key_id = await add_key(mfa, user)
    at, data = await last_event(mfa, "mfa.two_factor_enabled")
    assert data["key_id"] == key_id and await codes(mfa, user) == 10
    body = await undo(mfa, user, "mfa.two_factor_enabled", at, key_id)
    assert (body["undone"], body["two_factor_enabled"]) == (True, False)
    assert await codes(mfa, user) == 0
    _, factors = await mfa.internal("GET", f"/internal/users/{user}/factors")
    assert factors == {"two_factor_enabled": False, "second_factors": [], "recovery_codes_remaining": 0}
    body = await undo(mfa, user, "mfa.two_factor_enabled", at, key_id)
    assert (body["undone"], body["two_factor_enabled"]) == (False, False)


async def test_another_users_key_is_out_of_reach(mfa: Mfa) -> None:
    owner, other = new_user(), new_user()
    key_id = await add_key(mfa, owner)
    at, _ = await last_event(mfa, "mfa.two_factor_enabled")
    body = await undo(mfa, other, "mfa.security_key_added", at, key_id)
    assert (body["undone"], body["two_factor_enabled"]) == (False, False)
    assert await mfa.db.fetchval("SELECT user_id FROM mfa.webauthn_credentials WHERE id::text = $1", key_id) == owner
    assert await codes(mfa, owner) == 10


async def test_the_reported_app_enrolment_is_removed(mfa: Mfa) -> None:
    user = new_user()
    await mfa.enable_totp(user)
    at, _ = await last_event(mfa, "mfa.two_factor_enabled")
    events = await outbox_size(mfa)
    # Up to a few seconds of skew between the database's clock (enabled_at) and mfa's (occurred_at).
    body = await undo(mfa, user, "mfa.two_factor_enabled", shifted(at, -3))
    assert (body["undone"], body["two_factor_enabled"]) == (True, False)
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.totp_secrets WHERE user_id = $1", user) == 0
    assert await codes(mfa, user) == 0  # the last factor: the codes are void too
    assert await outbox_size(mfa) == events
    assert (await undo(mfa, user, "mfa.two_factor_enabled", at))["undone"] is False


async def test_totp_enabled_beside_a_key_is_removed_the_key_and_codes_stay(mfa: Mfa) -> None:
    user = new_user()
    await add_key(mfa, user)
    await mfa.enable_totp(user)
    at, _ = await last_event(mfa, "mfa.totp_enabled")
    body = await undo(mfa, user, "mfa.totp_enabled", at)
    assert (body["undone"], body["two_factor_enabled"]) == (True, True)
    _, view = await mfa.call("GET", "/api/mfa", user)
    assert not view["totp"]["enabled"] and len(view["security_keys"]) == 1
    assert view["recovery_codes"] == {"remaining": 10}


async def test_a_later_app_re_enrolment_is_kept(mfa: Mfa) -> None:
    user = new_user()
    await add_key(mfa, user)
    await mfa.enable_totp(user)
    at, _ = await last_event(mfa, "mfa.totp_enabled")
    # That enrolment was a minute ago; then the user turned the app off and set it up again just now.
    await mfa.db.execute("UPDATE mfa.totp_secrets SET enabled_at = enabled_at - interval '1 minute' "
                         "WHERE user_id = $1", user)
    reported = shifted(at, -60)
    status, _ = await mfa.call("POST", "/api/mfa/totp/disable", user, {"password": "correct horse battery staple"})
    assert status == 204
    await mfa.enable_totp(user)
    body = await undo(mfa, user, "mfa.totp_enabled", reported)
    assert (body["undone"], body["two_factor_enabled"]) == (False, True)
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["totp"]["enabled"]

    # A pending setup is no enrolment: it is left alone too.
    pending = new_user()
    status, _ = await mfa.call("POST", "/api/mfa/totp/setup", pending)
    body = await undo(mfa, pending, "mfa.totp_enabled", datetime.now(UTC).isoformat())
    assert body["undone"] is False
    assert await mfa.db.fetchval("SELECT count(*) FROM mfa.totp_secrets WHERE user_id = $1", pending) == 1


async def test_regenerated_codes_are_voided_newer_ones_survive(mfa: Mfa) -> None:
    user = new_user()
    await mfa.enable_totp(user)
    status, _ = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {}, reauth_age=5)
    assert status == 200
    at, _ = await last_event(mfa, "mfa.recovery_codes_regenerated")
    body = await undo(mfa, user, "mfa.recovery_codes_regenerated", at)
    assert (body["undone"], body["two_factor_enabled"]) == (True, True)
    assert await codes(mfa, user) == 0
    status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["totp"]["enabled"] and view["recovery_codes"] == {"remaining": 0}
    assert (await undo(mfa, user, "mfa.recovery_codes_regenerated", at))["undone"] is False

    # Regenerated a minute ago, then again just now: the newer set survives an undo of the older.
    status, _ = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {}, reauth_age=5)
    await mfa.db.execute("UPDATE mfa.recovery_codes SET created_at = created_at - interval '1 minute' "
                         "WHERE user_id = $1", user)
    older, _ = await last_event(mfa, "mfa.recovery_codes_regenerated")
    status, newer = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {}, reauth_age=5)
    assert status == 200
    body = await undo(mfa, user, "mfa.recovery_codes_regenerated", shifted(older, -60))
    assert (body["undone"], body["two_factor_enabled"]) == (False, True)
    assert await codes(mfa, user) == 10
    assert (await mfa.internal("POST", "/internal/verify/recovery-code",
                               {"user_id": user, "code": newer["recovery_codes"][0]}))[1]["ok"] is True


async def test_other_types_undo_nothing(mfa: Mfa) -> None:
    user = new_user()
    key_id = await add_key(mfa, user)
    await mfa.enable_totp(user)
    now = datetime.now(UTC).isoformat()
    before = await mfa.call("GET", "/api/mfa", user)
    for type_, key in (("mfa.totp_disabled", None), ("mfa.security_key_removed", key_id),
                       ("mfa.recovery_code_used", None), ("profile.password_changed", None),
                       ("mfa.totp_enabled", key_id), ("mfa.recovery_codes_regenerated", None)):
        if type_ == "mfa.recovery_codes_regenerated":
            now = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # before these codes existed
        body = await undo(mfa, user, type_, now, key)
        assert (body["undone"], body["two_factor_enabled"]) == (False, True), type_
    assert await mfa.call("GET", "/api/mfa", user) == before


async def test_malformed_input_is_a_400_naming_the_field(mfa: Mfa) -> None:
    user = new_user()
    key_id = await add_key(mfa, user)
    good = {"event_id": "e-1", "type": "mfa.security_key_added", "key_id": key_id,
            "at": datetime.now(UTC).isoformat()}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "event_id": None}, "event_id"), ({**good, "event_id": ""}, "event_id"),
        ({**good, "event_id": 7}, "event_id"), ({**good, "type": None}, "type"), ({**good, "type": ["x"]}, "type"),
        ({**good, "key_id": "not-a-uuid"}, "key_id"), ({**good, "key_id": 5}, "key_id"),
        ({**good, "key_id": None}, "key_id"),  # security_key_added names its key
        ({**good, "at": None}, "at"), ({**good, "at": "yesterday"}, "at"),
        ({**good, "at": "2026-01-01T10:00:00"}, "at"),  # no offset
        ({**good, "at": "9999-12-31T23:59:59+00:00"}, "at"), ({**good, "at": "9999-12-31T23:59:59-05:00"}, "at"),
        ({**good, "at": 1700000000}, "at"), ({**good, "event_id": "a\u0000b"}, "event_id"),
    ]
    for body, field in cases:
        response = await mfa.client.post(f"/internal/users/{user}/undo", json=body, headers=mfa.service())
        problem = await response.json()
        assert response.status == 400 and response.content_type == "application/problem+json", (body, problem)
        assert problem["status"] == 400 and problem["detail"] and field in problem["errors"], (body, problem)
    for raw in (b"{not json", b"[1]"):
        response = await mfa.client.post(f"/internal/users/{user}/undo", data=raw, headers={
            **mfa.service(), "Content-Type": "application/json"})
        assert response.status == 400
    response = await mfa.client.post(f"/internal/users/{'u' * 65}/undo", json=good, headers=mfa.service())
    assert response.status == 400
    assert (await mfa.client.post(f"/internal/users/{user}/undo", json=good)).status == 401
    assert (await mfa.client.post(f"/internal/users/{user}/undo", json=good, headers=mfa.identity(user))).status == 401
    _, view = await mfa.call("GET", "/api/mfa", user)
    assert len(view["security_keys"]) == 1  # nothing was undone by any of these
