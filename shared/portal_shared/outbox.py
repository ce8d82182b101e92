"""Writing events: an outbox row in the caller's transaction, so the change and its event commit together."""

from __future__ import annotations

import asyncpg
import structlog

from portal_shared.events import Envelope, Event, encode

_INSERT = "INSERT INTO outbox (id, type, body) VALUES ($1, $2, $3::jsonb)"


async def enqueue(conn: asyncpg.Connection, event: Event, *, source: str) -> Envelope:
    """Record `event` in the outbox. Call inside the transaction that makes the change it reports.

    The correlation id is the current request's (bound by the web middleware), so one id follows a
    request from HTTP through the broker to the email it causes.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue() must run inside the transaction of the change it reports")
    correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
    envelope = Envelope.wrap(event, source=source, correlation_id=correlation_id)
    await conn.execute(_INSERT, envelope.id, envelope.type, encode(envelope).decode())
    return envelope
