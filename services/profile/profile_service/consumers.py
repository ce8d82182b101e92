"""What the profile service consumes from the bus: mfa's two-factor events keep the sign-in latch, and
every security event of an account becomes an item of its activity feed (activity.py).

The latch is users.two_factor_enabled (also the admin list's column). mfa raises it synchronously
(POST /internal/users/{id}/two-factor-on, accounts.raise_two_factor_latch) before it commits turning
two-factor on, so a password sign-in that finds it down need not ask mfa; one that finds it up offers the
factors mfa last listed for the account (second_factors.offered), asking mfa when there is no such list.
Only the latch events below lower the latch. Events may arrive out of order, so each update applies only
when it is newer than the last one applied (occurred_at). Every factor event voids the kept list.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from portal_shared.consumer import EventHandler, PermanentError
from portal_shared.events import (
    ALL_EVENTS,
    Envelope,
    MfaResetByAdmin,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecurityKeyAdded,
    SecurityKeyRemoved,
    TotpDisabled,
    TotpEnabled,
    TwoFactorDisabled,
    TwoFactorEnabled,
)
from portal_shared.ids import is_uuid

from profile_service import activity
from profile_service.repository import users as users_repo


def _occurred_at(envelope: Envelope) -> datetime:
    try:
        return datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00"))
    except ValueError:
        raise PermanentError(f"occurred_at {envelope.occurred_at!r} is not ISO 8601") from None


def _user_id(envelope: Envelope) -> str:
    if not is_uuid(envelope.event.user_id):
        raise PermanentError(f"user_id {envelope.event.user_id!r} is not a UUID")
    return envelope.event.user_id


async def on_factor_changed(conn: asyncpg.Connection, envelope: Envelope) -> None:
    await users_repo.forget_second_factors(conn, _user_id(envelope))
    await activity.on_event(conn, envelope)


async def on_two_factor_enabled(conn: asyncpg.Connection, envelope: Envelope) -> None:
    await users_repo.set_two_factor(conn, _user_id(envelope), True, _occurred_at(envelope))
    await on_factor_changed(conn, envelope)


async def on_two_factor_off(conn: asyncpg.Connection, envelope: Envelope) -> None:
    await users_repo.set_two_factor(conn, _user_id(envelope), False, _occurred_at(envelope))
    await on_factor_changed(conn, envelope)


# Changes of the factors a sign-in may offer that leave two-factor as it was (a renamed key changes none).
FACTOR_CHANGES = (TotpEnabled, TotpDisabled, SecurityKeyAdded, SecurityKeyRemoved, RecoveryCodesRegenerated,
                  RecoveryCodeUsed)

HANDLERS: dict[str, EventHandler] = {
    **{cls.type: activity.on_event for cls in ALL_EVENTS if cls.type not in activity.NOT_ACTIVITY},
    **{cls.type: on_factor_changed for cls in FACTOR_CHANGES},
    TwoFactorEnabled.type: on_two_factor_enabled,
    TwoFactorDisabled.type: on_two_factor_off,
    MfaResetByAdmin.type: on_two_factor_off,
}
