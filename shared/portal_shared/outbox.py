"""Writing events: an outbox row in the caller's transaction, so the change and its event commit together."""

from __future__ import annotations

import asyncpg
import structlog

from portal_shared import actor, tracing
from portal_shared.events import Envelope, Event, encode

# `$3::text::jsonb`: the parameter is sent as text, so a pool with a jsonb codec (db.create_pool
# registers json.dumps) does not encode the already-encoded body a second time as a JSON string.
_INSERT = "INSERT INTO outbox (id, type, body) VALUES ($1, $2, $3::text::jsonb)"


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel the outbox trigger signals on commit (see migrations/0001)."""
    return f"{schema}_outbox"


async def enqueue(conn: asyncpg.Connection, event: Event, *, source: str,
                  correlation_id: str | None = None) -> Envelope:
    """Record `event` in the outbox. Call inside the transaction that makes the change it reports.

    The correlation id defaults to the current request's (bound by the web middleware), so one id
    follows a request from HTTP through the broker to the email it causes; the request's actor (client
    address and browser) rides along the same way.

    Raises:
        RuntimeError: `conn` is not in a transaction (the event could commit without its change).
    """
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue() must run inside the transaction of the change it reports")
    if correlation_id is None:
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
    envelope = Envelope.wrap(event, source=source, correlation_id=correlation_id, actor=actor.current(),
                             traceparent=tracing.current_traceparent())
    await conn.execute(_INSERT, envelope.id, envelope.type, encode(envelope).decode())
    return envelope
