"""Event consumers: profile.user_created / profile.user_updated into mfa's user projection (email, name)."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from portal_shared.consumer import EventHandler, PermanentError
from portal_shared.events import Envelope, UserCreated, UserUpdated

from mfa_service.repository import users as users_repo


async def on_user_changed(conn: asyncpg.Connection, envelope: Envelope) -> None:
    event = envelope.event
    if not isinstance(event, UserCreated | UserUpdated):
        raise PermanentError(f"unexpected event {envelope.type}")
    try:
        occurred_at = datetime.fromisoformat(envelope.occurred_at)
    except ValueError:
        raise PermanentError("occurred_at is not ISO 8601") from None
    if occurred_at.tzinfo is None:
        raise PermanentError("occurred_at has no time zone")
    await users_repo.upsert(conn, event.user_id, event.email, event.name, occurred_at)


HANDLERS: dict[str, EventHandler] = {
    UserCreated.type: on_user_changed,
    UserUpdated.type: on_user_changed,
}
