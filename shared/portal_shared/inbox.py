"""Inbox retention: a processed message's inbox row is deleted once no copy of that message can still come.

The row is what turns a redelivered message into a no-op (consumer.py), so it must outlive every way a copy
can arrive:
- the broker redelivers a message whose ack was lost (a connection or consumer dropped after the commit)
  when a consumer takes the queue again: seconds after the blip, or as long as the service stays down;
- the relay publishes a row again when it was confirmed but not yet marked sent (a crash or a database
  outage between the two): when the relay runs again, so again bounded by an outage;
- an operator's `dlq replay` of a dead letter: those are messages whose handling failed, so they have
  no inbox row to lose.
Published outbox rows are kept 7 days (relay.py): an outage longer than that already loses the outbox's
own record. Thirty days is well past every one of those paths; a copy older than that would be handled
as a new message.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import structlog
from opentelemetry import trace

from portal_shared import tracing
from portal_shared.metrics import INBOX_PRUNED

log = structlog.get_logger("portal.inbox")

INBOX_RETENTION = timedelta(days=30)
PRUNE_EVERY_SECONDS = 600.0
# In chunks, like the outbox's prune: a large backlog never means long locks or one huge transaction.
_PRUNE = """
DELETE FROM inbox WHERE (consumer, message_id) IN (
    SELECT consumer, message_id FROM inbox WHERE processed_at < now() - $1::interval LIMIT $2
)
"""


async def prune(pool: asyncpg.Pool, *, retention: timedelta = INBOX_RETENTION, chunk: int = 5000) -> int:
    """Delete inbox rows processed longer than `retention` ago; how many."""
    total = 0
    while True:
        deleted = int((await pool.execute(_PRUNE, retention, chunk)).split()[-1])
        total += deleted
        if deleted < chunk:
            break
    INBOX_PRUNED.inc(total)
    return total


async def prune_forever(pool: asyncpg.Pool, tracer: trace.Tracer, *,
                        retention: timedelta = INBOX_RETENTION, every_seconds: float = PRUNE_EVERY_SECONDS) -> None:
    """Prune now and every `every_seconds`; a failed run (the database away) is retried at the next one."""
    while True:
        try:
            with tracing.background(tracer, "prune inbox"):
                await prune(pool, retention=retention)
        except Exception as exc:  # (cancellation is not an Exception: it ends the loop)
            log.warning("inbox_prune_failed", error=type(exc).__name__)
        await asyncio.sleep(every_seconds)
