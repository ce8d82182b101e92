"""The idempotent consumer: handle each event once, ack only after the effect committed.

- The inbox row (consumer, message id) is inserted in the handler's transaction: a redelivered or
  duplicated message finds it and has no second effect.
- Malformed or unknown messages are rejected without requeue: the queue dead-letters them at once.
- A transient failure waits (backoff grows with RabbitMQ's x-delivery-count) and then requeues; the
  quorum queue dead-letters the message once it reaches `x-delivery-limit`. Only the failing message
  waits: the others keep flowing through the remaining prefetch slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from portal_shared import broker
from portal_shared.events import Envelope, UnknownEventError, decode
from portal_shared.metrics import CONSUMED, DEAD_LETTERED, DUPLICATES_SKIPPED, RETRIED

log = structlog.get_logger("portal.consumer")

EventHandler = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]

_CLAIM_MESSAGE = """
INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING 1
"""


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it now, don't retry."""


class EventConsumer:
    def __init__(self, pool: asyncpg.Pool, connection: AbstractRobustConnection, *, service: str,
                 handlers: dict[str, EventHandler], prefetch: int = 32,
                 delivery_limit: int = broker.DEFAULT_DELIVERY_LIMIT, retry_base_seconds: float = 0.5) -> None:
        self._pool = pool
        self._connection = connection
        self._service = service
        self._handlers = handlers
        self._prefetch = prefetch
        self._delivery_limit = delivery_limit
        self._retry_base = retry_base_seconds

    async def start(self) -> None:
        """Declare the topology (idempotent) and start consuming; the robust channel resumes by itself."""
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await broker.declare_service_queue(channel, self._service, sorted(self._handlers),
                                                   delivery_limit=self._delivery_limit)
        await queue.consume(self.on_message, no_ack=False)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = decode(message.body)
        except UnknownEventError as exc:
            DEAD_LETTERED.labels("malformed").inc()
            log.error("event_rejected", message_id=message.message_id, reason=str(exc))
            await message.reject(requeue=False)
            return
        handler = self._handlers.get(envelope.type)
        structlog.contextvars.bind_contextvars(correlation_id=envelope.correlation_id, event_id=envelope.id,
                                               event_type=envelope.type)
        try:
            if handler is None:
                raise PermanentError(f"no handler for {envelope.type}")
            duplicate = await self._handle_once(handler, envelope)
        except PermanentError as exc:
            DEAD_LETTERED.labels("permanent").inc()
            log.error("event_dead_lettered", reason=str(exc))
            await message.reject(requeue=False)
            return
        except Exception as exc:
            await self._retry_later(message, exc)
            return
        finally:
            structlog.contextvars.unbind_contextvars("event_id", "event_type")
        if duplicate:
            DUPLICATES_SKIPPED.labels(envelope.type).inc()
        else:
            CONSUMED.labels(envelope.type).inc()
        await message.ack()

    async def _handle_once(self, handler: EventHandler, envelope: Envelope) -> bool:
        """Run the handler in a transaction with its inbox row; True when it had already run."""
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(_CLAIM_MESSAGE, self._service, envelope.id, envelope.type)
            if not claimed:
                return True
            await handler(conn, envelope)
        return False

    async def _retry_later(self, message: AbstractIncomingMessage, exc: Exception) -> None:
        deliveries = int(message.headers.get("x-delivery-count", 0) or 0) + 1
        delay = min(self._retry_base * 2 ** (deliveries - 1), 30.0)
        RETRIED.labels(message.type or "unknown").inc()
        log.warning("event_retry", error=type(exc).__name__, detail=str(exc)[:200], delivery=deliveries,
                    limit=self._delivery_limit, delay=delay)
        if deliveries >= self._delivery_limit:
            DEAD_LETTERED.labels("delivery_limit").inc()
        await asyncio.sleep(delay)
        await message.nack(requeue=True)
