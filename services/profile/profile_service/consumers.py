"""What the profile service consumes from the bus: mfa's two-factor events keep the sign-in latch
(mfa_events.py), and every security event of an account becomes an item of its activity feed."""

from __future__ import annotations

import asyncpg
from portal_shared.consumer import EventHandler
from portal_shared.events import ALL_EVENTS, Envelope

from profile_service import activity, mfa_events


def _both(first: EventHandler, second: EventHandler) -> EventHandler:
    async def handle(conn: asyncpg.Connection, envelope: Envelope) -> None:
        await first(conn, envelope)
        await second(conn, envelope)

    return handle


HANDLERS: dict[str, EventHandler] = {
    cls.type: activity.on_event for cls in ALL_EVENTS if cls.type not in activity.NOT_ACTIVITY}
for _type, _latch in mfa_events.HANDLERS.items():
    HANDLERS[_type] = _both(_latch, HANDLERS[_type]) if _type in HANDLERS else _latch
