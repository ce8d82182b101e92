"""What the profile service consumes from the bus: mfa's two-factor events keep the sign-in latch, and
every security event of an account becomes an item of its activity feed (activity.py).

The latch is users.two_factor_enabled (also the admin list's column). mfa raises it synchronously
(POST /internal/users/{id}/two-factor-on, accounts.raise_two_factor_latch) before it commits turning
two-factor on, so a password sign-in that finds it down need not ask mfa; one that finds it up asks mfa
live which factors to offer. Only the events below lower it. Events may arrive out of order, so each update
applies only when it is newer than the last one applied (occurred_at).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from portal_shared.consumer import EventHandler, PermanentError
from portal_shared.events import ALL_EVENTS, Envelope, MfaResetByAdmin, TwoFactorDisabled, TwoFactorEnabled
from portal_shared.ids import is_uuid

from profile_service import activity
from profile_service.repository import users as users_repo


def _occurred_at(envelope: Envelope) -> datetime:
    try:
        return datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00"))
    except ValueError:
        raise PermanentError(f"occurred_at {envelope.occurred_at!r} is not ISO 8601") from None


async def _set_latch(conn: asyncpg.Connection, envelope: Envelope, enabled: bool) -> None:
    if not is_uuid(envelope.event.user_id):
        raise PermanentError(f"user_id {envelope.event.user_id!r} is not a UUID")
    await users_repo.set_two_factor(conn, envelope.event.user_id, enabled, _occurred_at(envelope))


async def on_two_factor_enabled(conn: asyncpg.Connection, envelope: Envelope) -> None:
    await _set_latch(conn, envelope, True)
    await activity.on_event(conn, envelope)


async def on_two_factor_off(conn: asyncpg.Connection, envelope: Envelope) -> None:
    await _set_latch(conn, envelope, False)
    await activity.on_event(conn, envelope)


HANDLERS: dict[str, EventHandler] = {
    **{cls.type: activity.on_event for cls in ALL_EVENTS if cls.type not in activity.NOT_ACTIVITY},
    TwoFactorEnabled.type: on_two_factor_enabled,
    TwoFactorDisabled.type: on_two_factor_off,
    MfaResetByAdmin.type: on_two_factor_off,
}
