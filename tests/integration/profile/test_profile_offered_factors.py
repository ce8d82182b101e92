"""The factor list a sign-in offers after its first step: asked of mfa once per change of the account's
factors, kept on the account until a change voids it, and never a way past the second factor
(second_factors.offered; docs/internal-api.md, "The two-factor latch")."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from portal_shared.events import (
    Event,
    MfaResetByAdmin,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecurityKeyAdded,
    SecurityKeyRemoved,
    SecurityKeyRenamed,
    TotpDisabled,
    TotpEnabled,
    TwoFactorDisabled,
    TwoFactorEnabled,
)
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, TOTP_CODE, ProfileHarness

WITH_APP = ["totp", "recovery_code"]
WITH_APP_AND_KEY = ["totp", "webauthn", "recovery_code"]


async def _offered(portal: ProfileHarness) -> list[str] | None:
    """What a password sign-in of the demo account offers (None: it completed without a second factor)."""
    body = await portal.browser().login(DEMO_EMAIL)
    return body.get("second_factors") if body["state"] == "second_factor_required" else None


async def test_sign_ins_ask_mfa_once_and_then_offer_the_kept_list(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    for _ in range(3):
        assert await _offered(portal) == WITH_APP
    assert portal.factor_checks(portal.demo_id) == 1
    assert await portal.kept_factors(portal.demo_id) == WITH_APP


def _key_id() -> str:
    return str(uuid.uuid4())


# Every event of a change to the factors a sign-in may offer; the latch events are delivered as older than
# the latch, so they leave it up (test_profile_second_factor covers their effect on the latch).
FACTOR_EVENTS: list[Callable[[str], Event]] = [
    lambda user: TotpEnabled(user_id=user),
    lambda user: TotpDisabled(user_id=user),
    lambda user: SecurityKeyAdded(user_id=user, key_id=_key_id(), name="YubiKey"),
    lambda user: SecurityKeyRemoved(user_id=user, key_id=_key_id(), name="YubiKey"),
    lambda user: RecoveryCodesRegenerated(user_id=user, count=10),
    lambda user: RecoveryCodeUsed(user_id=user, remaining=9),
    lambda user: TwoFactorEnabled(user_id=user, method="webauthn", key_id=_key_id(), name="YubiKey"),
    lambda user: TwoFactorDisabled(user_id=user, method="webauthn"),
    lambda user: MfaResetByAdmin(user_id=user, admin_id=str(uuid.uuid4())),
]


@pytest.mark.parametrize("make_event", FACTOR_EVENTS, ids=lambda make: make("u").type)
async def test_every_factor_event_voids_the_kept_list(portal: ProfileHarness,
                                                     make_event: Callable[[str], Event]) -> None:
    await portal.enable_totp(portal.demo_id)
    assert await _offered(portal) == WITH_APP
    portal.mfa.keys.add(portal.demo_id)  # a change in mfa, heard of only through its event
    assert await _offered(portal) == WITH_APP, "until the event, the kept list is offered"
    before_latch = datetime.now(UTC) - timedelta(hours=1)
    await portal.deliver(make_event(portal.demo_id), before_latch)
    assert await portal.kept_factors(portal.demo_id) is None
    assert await _offered(portal) == WITH_APP_AND_KEY
    assert portal.factor_checks(portal.demo_id) == 2


async def test_a_renamed_key_keeps_the_list(portal: ProfileHarness) -> None:
    await portal.add_key(portal.demo_id)
    assert await _offered(portal) == ["webauthn", "recovery_code"]
    await portal.deliver(SecurityKeyRenamed(user_id=portal.demo_id, key_id=_key_id(), name="New", old_name="Old"))
    assert await _offered(portal) == ["webauthn", "recovery_code"]
    assert portal.factor_checks(portal.demo_id) == 1


async def test_raising_the_latch_and_an_admins_reset_void_the_kept_list(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    assert await _offered(portal) == WITH_APP
    await portal.add_key(portal.demo_id)  # the latch is raised again by a key's registration
    assert await portal.kept_factors(portal.demo_id) is None
    assert await _offered(portal) == WITH_APP_AND_KEY

    admin = await portal.signed_in(ADMIN_EMAIL)
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/mfa/reset"))[0] == 204
    # mfa's reset_by_admin event has not come (the stand-in sends none): the reset itself voided the list,
    # so the next sign-in asks mfa, which has no factor left.
    assert await portal.kept_factors(portal.demo_id) is None
    assert await _offered(portal) is None


async def test_a_stale_list_costs_a_failed_check_never_a_bypass(portal: ProfileHarness) -> None:
    """The app removed in mfa, its event not heard of yet: the kept list still asks for it, the check fails
    (mfa answers it), the failure voids the list, and the next sign-in has mfa's live answer."""
    await portal.enable_totp(portal.demo_id)
    assert await _offered(portal) == WITH_APP
    portal.mfa.totp.discard(portal.demo_id)
    portal.mfa.codes.pop(portal.demo_id)

    browser = portal.browser()
    assert (await browser.login(DEMO_EMAIL))["second_factors"] == WITH_APP
    status, body = await browser.post("/api/auth/login/totp", {"code": TOTP_CODE})
    assert status == 401 and body["type"].endswith("invalid-second-factor")
    assert (await browser.get("/api/profile"))[0] == 401
    assert await portal.kept_factors(portal.demo_id) is None
    assert await _offered(portal) is None, "mfa has no factor left: the password suffices, as without a list"


async def test_an_answer_read_before_a_change_is_not_kept_after_it(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    portal.mfa.hold_factors = asyncio.Event()
    signing_in = asyncio.create_task(_offered(portal))
    await asyncio.wait_for(portal.mfa.factors_read.wait(), 10)  # mfa's answer is read, on its way back
    portal.mfa.keys.add(portal.demo_id)
    await portal.deliver(SecurityKeyAdded(user_id=portal.demo_id, key_id=_key_id(), name="YubiKey"))
    portal.mfa.hold_factors.set()
    assert await signing_in == WITH_APP, "that sign-in offers what mfa answered it"
    assert await portal.kept_factors(portal.demo_id) is None, "but the answer, older than the change, is not kept"
    portal.mfa.hold_factors = None
    assert await _offered(portal) == WITH_APP_AND_KEY


async def test_two_factor_on_with_no_factor_listed_still_asks_for_a_second_factor(portal: ProfileHarness) -> None:
    """mfa says two-factor is on but lists nothing: the sign-in fails closed (pending, nothing to offer),
    and the empty answer is not kept."""
    await portal.raise_two_factor(portal.demo_id)
    portal.mfa.unlisted.add(portal.demo_id)
    browser = portal.browser()
    assert await browser.login(DEMO_EMAIL) == {"state": "second_factor_required", "second_factors": []}
    assert (await browser.get("/api/profile"))[0] == 401
    assert await portal.kept_factors(portal.demo_id) is None
