"""The idempotent consumer: handle each event once, ack only after the effect committed.

- The inbox row (consumer, message id) is inserted in the handler's transaction: a redelivered or
  duplicated message finds it and has no second effect.
- A handler whose whole effect is one SQL statement (`OneStatement`) records the inbox row in that same
  statement: one round trip per event instead of BEGIN, claim, effect, COMMIT.
- Malformed or unknown messages are dead-lettered at once.
- A handler failure waits (backoff grows with RabbitMQ's x-delivery-count) and then requeues; on its
  `delivery_limit`-th delivery the message is dead-lettered instead (the queue's x-delivery-limit is the
  backstop for a message that kills the process). Only the failing message waits: the others keep
  flowing through the remaining prefetch slots.
- Dead-lettering is a scrubbed copy (no reset or invitation link, no `token=` value) published to the
  dead-letter exchange with confirms, and only then the ack of the original: a usable token never sits in
  `<service>.dead-letter`. What the broker dead-letters by itself (the x-delivery-limit backstop of a
  crash loop, or the reject this falls back to when the copy cannot be published) arrives raw; it is
  scrubbed in place at the next consumer start (a crash loop restarts the consumer) and by every
  `python -m portal_shared.dlq list|replay|scrub`. Those are rare, short windows, and nothing is ever
  lost to scrubbing (each raw message is acked only after its copy was confirmed).
- While the database is unreachable the message is retried in place, unacked, without spending its
  deliveries: an outage of our own database must not dead-letter security events.
- Each delivery is a CONSUMER span, the child of the `traceparent` AMQP header the relay set (so it joins
  the trace of the request that wrote the event); its SQL statements are its children.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import aiormq
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from opentelemetry.trace import SpanKind

from portal_shared import broker, tracing
from portal_shared.dlq import publish_dead_letter, scrub_dead_letters, scrub_text
from portal_shared.events import Envelope, UnknownEventError, decode
from portal_shared.metrics import CONSUMED, DEAD_LETTERED, DUPLICATES_SKIPPED, RETRIED

log = structlog.get_logger("portal.consumer")

EventHandler = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]

_CLAIM_MESSAGE = """
INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING 1
"""


@dataclass(frozen=True, slots=True)
class Statement:
    """An event's whole effect as one data-modifying SQL statement that runs with the inbox claim.

    It sees the claim as the CTE `claimed` and must do nothing unless the claim took place, e.g.
    `INSERT INTO t (a) SELECT $4::text WHERE EXISTS (SELECT 1 FROM claimed)`. $1–$3 are the claim's
    parameters; the statement's own `args` are $4 onwards (cast them: a SELECT list infers no types).
    """

    sql: str
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class OneStatement:
    """A handler given as the statement it runs (`build` may raise PermanentError for a bad event)."""

    build: Callable[[Envelope], Statement]


def _with_claim(sql: str) -> str:
    # `sql` is a handler's constant statement text, never data (that travels as parameters).
    return f"WITH claimed AS ({_CLAIM_MESSAGE}), effect AS ({sql})\nSELECT EXISTS (SELECT 1 FROM claimed)"  # noqa: S608


Handler = EventHandler | OneStatement


class DatabaseUnavailableError(ConnectionError):
    """No database connection could be had for the handler."""


# The database (not the handler's logic) is unavailable: no connection, connection lost, server
# starting or shutting down.
_DATABASE_DOWN = (
    DatabaseUnavailableError,
    OSError,  # ConnectionRefusedError, ConnectionResetError, socket timeouts
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a write reached a primary demoted by a failover
)
# Settling (ack/nack/reject) on a channel that died: the broker redelivers the message anyway.
_CHANNEL_GONE = (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException, ConnectionError, RuntimeError)


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it now, don't retry."""


class EventConsumer:
    """Consumes the service's queue with `handlers` ({event type: handler}); bindings follow the handlers.

    Args:
        prefetch: unacked messages (and so concurrent handlers) at most.
        delivery_limit: deliveries before a failing message is dead-lettered (also the queue's
            x-delivery-limit argument).
        retry_base_seconds: the delay before the first redelivery; it doubles per delivery, up to
            `retry_max_seconds`.
        database_hold_seconds: how long a message is retried in place while the database is down,
            before its delivery counts as failed.
    """

    def __init__(self, pool: asyncpg.Pool, connection: AbstractConnection, *, service: str,
                 handlers: dict[str, Handler], prefetch: int = 32,
                 delivery_limit: int = broker.DEFAULT_DELIVERY_LIMIT, retry_base_seconds: float = 0.5,
                 retry_max_seconds: float = 30.0, database_hold_seconds: float = 300.0) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self._pool = pool
        self._connection = connection
        self._service = service
        self._handlers = handlers
        self._prefetch = prefetch
        self._delivery_limit = delivery_limit
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._database_hold = database_hold_seconds
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[object]] = set()
        self._dead_letter_channel: AbstractChannel | None = None
        self._dead_letter_lock = asyncio.Lock()
        self._scrub_task: asyncio.Task[None] | None = None
        self._tracer = tracing.tracer(service)

    async def start(self) -> None:
        """Declare the topology (idempotent) and start consuming; the robust channel resumes by itself."""
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await broker.declare_service_queue(channel, self._service, sorted(self._handlers),
                                                   delivery_limit=self._delivery_limit)
        self._channel, self._queue = channel, queue
        self._consumer_tag = await queue.consume(self.on_message, no_ack=False)
        # In the background: a long dead-letter queue must not delay the service's start.
        self._scrub_task = asyncio.create_task(self._scrub_dead_letters(), name=f"{self._service}-dlq-scrub")

    async def scrub_finished(self) -> None:
        """Wait for the dead-letter scrub that `start` began (tests; operators have `dlq scrub`)."""
        if self._scrub_task is not None:
            await asyncio.gather(self._scrub_task, return_exceptions=True)

    async def _scrub_dead_letters(self) -> None:
        """Rewrite what the broker dead-lettered raw (e.g. a crash loop, whose end is this very start)."""
        try:
            scrubbed = await scrub_dead_letters(self._connection, self._service)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker is away: the next start or `dlq scrub` does it
            log.warning("dead_letter_scrub_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return
        if scrubbed:
            log.info("dead_letters_scrubbed", count=scrubbed)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking messages, let the handlers in flight finish (up to `grace_seconds`), close the channel.

        Whatever is still unacked afterwards is redelivered by the broker, and the inbox dedupes it.
        """
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(*_CHANNEL_GONE, asyncio.TimeoutError):
                await self._queue.cancel(self._consumer_tag, timeout=grace_seconds)
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
        if self._scrub_task is not None:
            self._scrub_task.cancel()
            await asyncio.gather(self._scrub_task, return_exceptions=True)
            self._scrub_task = None
        for channel in (self._channel, self._dead_letter_channel):
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(*_CHANNEL_GONE, asyncio.TimeoutError):
                    await asyncio.wait_for(channel.close(), grace_seconds)
        self._channel = self._queue = self._consumer_tag = self._dead_letter_channel = None

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        # Attributes: what identifies the message, never its body (it may hold a link or an address).
        attributes = {"messaging.system": "rabbitmq", "messaging.operation.type": "process",
                      "messaging.destination.name": message.routing_key or "",
                      "messaging.message.id": message.message_id or ""}
        try:
            with self._tracer.start_as_current_span(
                    f"process {message.type or 'message'}", context=tracing.extract(_text_headers(message)),
                    kind=SpanKind.CONSUMER, attributes=attributes, record_exception=False):
                await self._on_message(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            envelope = decode(message.body)
        except UnknownEventError as exc:
            DEAD_LETTERED.labels("malformed").inc()
            log.error("event_rejected", message_id=message.message_id, type=message.type, reason=_redacted(exc))
            await self._dead_letter(message, "malformed", str(exc))
            return
        with structlog.contextvars.bound_contextvars(correlation_id=envelope.correlation_id,
                                                     event_id=envelope.id, event_type=envelope.type):
            handler = self._handlers.get(envelope.type)
            try:
                if handler is None:
                    raise PermanentError(f"no handler for {envelope.type}")
                duplicate = await self._handle_with_database_retry(handler, envelope)
            except PermanentError as exc:
                DEAD_LETTERED.labels("permanent").inc()
                log.error("event_dead_lettered", reason=_redacted(exc))
                await self._dead_letter(message, "permanent", str(exc))
                return
            except Exception as exc:
                await self._retry_later(message, envelope, exc)
                return
            if duplicate:
                DUPLICATES_SKIPPED.labels(envelope.type).inc()
                log.info("event_duplicate_skipped")
            else:
                CONSUMED.labels(envelope.type).inc()
            await _settle(message.ack())

    async def _handle_with_database_retry(self, handler: Handler, envelope: Envelope) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._database_hold
        delay = min(self._retry_base, 1.0)
        while True:
            try:
                return await self._handle_once(handler, envelope)
            except _DATABASE_DOWN as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning("event_waiting_for_database", error=type(exc).__name__, detail=str(exc)[:200],
                            retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _handle_once(self, handler: Handler, envelope: Envelope) -> bool:
        """Run the handler atomically with its inbox row; True when it had already run."""
        if isinstance(handler, OneStatement):
            statement = handler.build(envelope)
            async with self._database() as conn:
                claimed = await conn.fetchval(_with_claim(statement.sql), self._service, envelope.id,
                                              envelope.type, *statement.args)
            return not claimed
        async with self._database() as conn, conn.transaction():
            claimed = await conn.fetchval(_CLAIM_MESSAGE, self._service, envelope.id, envelope.type)
            if not claimed:
                return True
            await handler(conn, envelope)
        return False

    @contextlib.asynccontextmanager
    async def _database(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await self._pool.acquire()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, not accepting connections, bad credentials, pool closing
            raise DatabaseUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    async def _retry_later(self, message: AbstractIncomingMessage, envelope: Envelope, exc: Exception) -> None:
        # x-delivery-count (quorum queues) counts the earlier deliveries that were not acked.
        headers = message.headers or {}
        deliveries = int(headers.get("x-delivery-count", 0) or 0) + 1  # type: ignore[call-overload]
        if deliveries >= self._delivery_limit:
            DEAD_LETTERED.labels("delivery_limit").inc()
            log.error("event_dead_lettered", reason="delivery limit reached", error=type(exc).__name__,
                      detail=_redacted(exc), delivery=deliveries, limit=self._delivery_limit)
            await self._dead_letter(message, "delivery_limit", f"{type(exc).__name__}: {exc}")
            return
        delay = min(self._retry_base * 2 ** (deliveries - 1), self._retry_max)
        RETRIED.labels(envelope.type).inc()
        log.warning("event_retry", error=type(exc).__name__, detail=_redacted(exc), delivery=deliveries,
                    limit=self._delivery_limit, delay=delay)
        # The delay holds one prefetch slot (not a hot requeue loop); the other slots keep flowing.
        await asyncio.sleep(delay)
        await _settle(message.nack(requeue=True))

    async def _dead_letter(self, message: AbstractIncomingMessage, cause: str, detail: str) -> None:
        """Give up on `message`: a scrubbed copy to the dead-letter queue (confirmed), then ack the original.

        If the copy cannot be published, the original is rejected and the broker dead-letters it raw
        (at-least-once, so nothing is lost); the next scrub (consumer start, `dlq`) removes its link. A
        copy confirmed whose ack is then lost makes a second copy at the redelivery: harmless, since a
        replay is deduplicated by the inbox.
        """
        try:
            channel = await self._confirm_channel()
            await publish_dead_letter(channel, self._service, message, cause=cause, detail=detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("dead_letter_copy_failed", error=type(exc).__name__, detail=str(exc)[:200])
            await self._drop_confirm_channel()
            await _settle(message.reject(requeue=False))
            return
        await _settle(message.ack())

    async def _confirm_channel(self) -> AbstractChannel:
        async with self._dead_letter_lock:
            if self._dead_letter_channel is None or self._dead_letter_channel.is_closed:
                channel = self._connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel
                self._dead_letter_channel = channel
            return self._dead_letter_channel

    async def _drop_confirm_channel(self) -> None:
        channel, self._dead_letter_channel = self._dead_letter_channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2)


def _text_headers(message: AbstractIncomingMessage) -> dict[str, str]:
    """The message's string headers (an AMQP long string may arrive as bytes)."""
    text: dict[str, str] = {}
    for key, value in (message.headers or {}).items():
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="replace")
        if isinstance(value, str):
            text[key] = value
    return text


def _redacted(exc: BaseException) -> str:
    """An error's text for a log line, any `token=` value blanked: a handler's message may quote a link."""
    return scrub_text(str(exc).encode()).decode(errors="replace")[:200]


async def _settle(outcome: Awaitable[None]) -> None:
    """Ack/nack/reject; if the channel died meanwhile, the broker redelivers the message and the inbox
    makes that harmless, so a lost settlement is logged, not raised."""
    try:
        await outcome
    except _CHANNEL_GONE as exc:
        log.warning("event_settle_lost", error=type(exc).__name__)
