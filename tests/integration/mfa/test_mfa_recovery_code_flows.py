"""Recovery codes: issued when two-factor turns on, single use (also under 20 concurrent sign-ins),
regenerated with the password, voided when two-factor turns off; and the admin reset."""

from __future__ import annotations

import asyncio

from tests.integration.mfa.conftest import PASSWORD, Mfa, new_user


def refused(remaining: int) -> dict:
    """A refused code's answer: `remaining` counts the codes either way; the newer field only after a success."""
    return {"ok": False, "remaining": remaining, "recovery_codes_remaining": None}


async def spend(mfa: Mfa, user: str, code: str) -> dict:
    status, body = await mfa.internal("POST", "/internal/verify/recovery-code", {"user_id": user, "code": code})
    assert status == 200
    return body


async def test_codes_are_single_use_in_any_format(mfa: Mfa) -> None:
    user = new_user()
    _, codes = await mfa.enable_totp(user)
    stored = await mfa.db.fetch("SELECT code_hash FROM mfa.recovery_codes WHERE user_id = $1", user)
    assert len(stored) == 10 and all(len(bytes(r["code_hash"])) == 32 for r in stored)
    variants = [codes[0], codes[1].upper(), codes[2].replace("-", ""), " " + codes[3].replace("-", " ").upper()]
    for remaining, code in enumerate(variants):
        assert await spend(mfa, user, code) == {"ok": True, "remaining": 9 - remaining,
                                                "recovery_codes_remaining": 9 - remaining}
    assert await spend(mfa, user, codes[0]) == refused(6)
    assert await spend(mfa, user, "not-a-code") == refused(6)
    assert await spend(mfa, new_user(), codes[4]) == refused(0)  # another user's code
    used = [data for kind, data in await mfa.events(user) if kind == "mfa.recovery_code_used"]
    assert used == [{"user_id": user, "remaining": r} for r in (9, 8, 7, 6)]
    _status, view = await mfa.call("GET", "/api/mfa", user)
    assert view["recovery_codes"] == {"remaining": 6}


async def test_twenty_concurrent_uses_of_one_code_succeed_once(mfa: Mfa) -> None:
    user = new_user()
    _, codes = await mfa.enable_totp(user)
    results = await asyncio.gather(*(spend(mfa, user, codes[0]) for _ in range(20)))
    assert sum(r["ok"] for r in results) == 1
    assert [t for t, _ in await mfa.events(user)].count("mfa.recovery_code_used") == 1


async def test_regenerate_needs_two_factor_and_the_password(mfa: Mfa) -> None:
    user = new_user()
    status, body = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {"password": PASSWORD})
    assert status == 409
    _, old = await mfa.enable_totp(user)
    status, body = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {"password": "wrong"})
    assert status == 422 and body["errors"]["password"]
    status, body = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {}, auth_age=900)
    assert status == 422 and body["errors"]["password"]
    status, body = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, {"password": PASSWORD})
    assert status == 200 and len(body["recovery_codes"]) == 10 and not set(body["recovery_codes"]) & set(old)
    assert await spend(mfa, user, old[0]) == refused(10)
    assert (await mfa.events(user))[-1] == ("mfa.recovery_codes_regenerated", {"user_id": user, "count": 10})
    status, again = await mfa.call("POST", "/api/mfa/recovery-codes/regenerate", user, None, auth_age=900,
                                   reauth_age=30)
    assert status == 200
    assert await spend(mfa, user, body["recovery_codes"][0]) == refused(10)
    assert (await spend(mfa, user, again["recovery_codes"][0]))["ok"]


async def test_admin_reset_removes_everything_with_one_event(mfa: Mfa) -> None:
    user, admin = new_user(), new_user()
    _, codes = await mfa.enable_totp(user)
    status, _ = await mfa.internal("POST", f"/internal/users/{user}/reset", {"admin_id": admin})
    assert status == 204
    assert (await mfa.events(user))[-1] == ("mfa.reset_by_admin", {"user_id": user, "admin_id": admin})
    assert len(await mfa.events(user)) == 2
    status, factors = await mfa.internal("GET", f"/internal/users/{user}/factors")
    assert factors == {"two_factor_enabled": False, "second_factors": [], "recovery_codes_remaining": 0}
    assert await spend(mfa, user, codes[0]) == refused(0)
    assert (await mfa.internal("POST", f"/internal/users/{user}/reset", {}))[0] == 422
