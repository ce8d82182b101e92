"""The outbox relay: publishes committed outbox rows to RabbitMQ with confirms, then marks them sent.

Delivery is at-least-once: a row is marked sent only after the broker confirmed it, so a crash between
confirm and commit republishes that batch (consumers dedupe by message id). Rows are claimed with
FOR UPDATE SKIP LOCKED and stay locked until marked, so replicas (and this relay's own workers) share
the work and never publish the same row at the same time. A row marked sent loses its secret data fields
(reset and invitation links): the broker has the event, and the kept row must hold no usable token.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from opentelemetry.trace import SpanKind

from portal_shared import broker, tracing
from portal_shared.doorbell import Doorbell
from portal_shared.events.contracts import SECRET_DATA_FIELDS
from portal_shared.listen import listen_forever
from portal_shared.metrics import (
    OUTBOX_LAG_SECONDS,
    OUTBOX_PRUNED,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
    OUTBOX_UNSENT,
)
from portal_shared.outbox import notify_channel

log = structlog.get_logger("portal.relay")

# Ordered by the partial index (next_attempt_at, created_at): no sort of the whole backlog per batch.
_CLAIM = """
SELECT id, type, body::text AS body, body ->> 'traceparent' AS traceparent
FROM outbox
WHERE published_at IS NULL AND next_attempt_at <= now()
ORDER BY next_attempt_at, created_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
# Marking a row sent also drops its secret data fields ($2, SECRET_DATA_FIELDS: reset and invitation
# links), in the same statement: the published row is kept for the retention period, and no stored copy
# may hold a usable token once the broker has the event.
_MARK_SENT = """
UPDATE outbox
SET published_at = now(),
    last_error = NULL,
    body = CASE WHEN jsonb_typeof(body -> 'data') = 'object' AND (body -> 'data') ?| $2::text[]
                THEN jsonb_set(body, '{data}', (body -> 'data') - $2::text[])
                ELSE body END
WHERE id = ANY($1::uuid[])
"""
# An unroutable or refused row waits with exponential backoff instead of blocking the rows behind it.
_MARK_FAILED = """
UPDATE outbox
SET attempts = attempts + 1,
    last_error = $2,
    next_attempt_at = now() + least(interval '1 second' * power(2, least(attempts, 20)), $3::interval)
WHERE id = $1
"""
_STATS = """
SELECT count(*) AS unsent, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS lag
FROM outbox WHERE published_at IS NULL
"""
# In chunks, so pruning a large backlog never holds long locks or one huge transaction.
_PRUNE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE published_at < now() - $1::interval LIMIT $2
)
"""


class BrokerUnavailableError(ConnectionError):
    """The broker did not confirm (down, connection lost, timeout); the rows stay unsent for a retry."""


def _refusal_reason(error: BaseException) -> str | None:
    """'unroutable' or 'nacked' when the broker answered but would not take the message, else None."""
    if isinstance(error, aio_pika.exceptions.PublishError):  # basic.return: mandatory, no queue bound
        return "unroutable"
    if isinstance(error, aio_pika.exceptions.DeliveryError):  # basic.nack
        return "nacked"
    return None


class OutboxRelay:
    """Runs as a background task of a service (see `run`); `publish_batch` does one round, for tests.

    Args:
        pool: the service's pool (search_path = its schema, where the outbox table is).
        connection: the service's (robust) broker connection; the relay opens its own confirm channel.
        schema: the service schema, naming the NOTIFY channel.
        dsn: for the dedicated LISTEN connection.
        batch_size: rows claimed, published concurrently and confirmed per transaction.
        workers: batches in flight at once; each claims its own rows (SKIP LOCKED), so while one
            waits for confirms another reads or marks rows.
        poll_seconds: the fallback poll when no NOTIFY arrives.
        max_backoff_seconds: the cap of the retry delay while the broker (or database) is down.
        refused_backoff: the cap of a single refused (unroutable) row's retry delay.
    """

    def __init__(self, pool: asyncpg.Pool, connection: AbstractConnection, *, schema: str,
                 dsn: str, batch_size: int = 200, poll_seconds: float = 1.0,
                 retention: timedelta = timedelta(days=7), workers: int = 2,
                 publish_timeout: float = 10.0, max_backoff_seconds: float = 10.0,
                 refused_backoff: timedelta = timedelta(minutes=5), stats_seconds: float = 5.0,
                 prune_seconds: float = 600.0) -> None:
        self._pool = pool
        self._connection = connection
        self._schema = schema
        self._dsn = dsn
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retention = retention
        self._workers = workers
        self._publish_timeout = publish_timeout
        self._max_backoff = max_backoff_seconds
        self._refused_backoff = refused_backoff
        self._stats_seconds = stats_seconds
        self._prune_seconds = prune_seconds
        self._doorbell = Doorbell()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._channel_lock = asyncio.Lock()
        self._tracer = tracing.tracer(schema)

    async def run(self) -> None:
        """Publish forever; broker or database outages mean backoff and retry, never giving up."""
        with tracing.untraced():  # polls, claims and marks are not traces: each publish is its row's span
            await self._run()

    async def _run(self) -> None:
        tasks = [asyncio.create_task(self._listen(), name="outbox-listen"),
                 asyncio.create_task(self._every(self._prune_seconds, self.prune), name="outbox-prune"),
                 asyncio.create_task(self._every(self._stats_seconds, self.update_stats), name="outbox-stats")]
        tasks += [asyncio.create_task(self._work(), name=f"outbox-relay-{n}") for n in range(self._workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._drop_channel(None)

    async def _work(self) -> None:
        failures = 0
        while True:
            try:
                claimed = await self.publish_batch()
                failures = 0
                if claimed >= self._batch_size:
                    self._doorbell.ring()  # more is waiting: let an idle worker take a batch too
                    continue
                # A NOTIFY that came while we published is kept by the doorbell, so it is not lost.
                await self._doorbell.wait(self._poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(0.1 * 2 ** failures, self._max_backoff) * (0.5 + random.random() / 2)
                if not isinstance(exc, BrokerUnavailableError):
                    OUTBOX_PUBLISH_FAILURES.labels("error").inc()
                log.warning("relay_retrying", error=type(exc).__name__, detail=str(exc)[:200],
                            attempt=failures, delay=round(delay, 2))
                await asyncio.sleep(delay)

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch; return how many rows it claimed.

        Raises:
            BrokerUnavailableError: some rows got no answer from the broker; they stay unsent (the rows
                the broker did confirm are marked sent all the same).
        """
        exchange = await self._exchange_ready()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch_size)
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(exchange, row) for row in rows),
                                           return_exceptions=True)
            sent = [row["id"] for row, result in zip(rows, results, strict=True) if result is None]
            if sent:
                await conn.execute(_MARK_SENT, sent, list(SECRET_DATA_FIELDS))
            unanswered: BaseException | None = None
            for row, result in zip(rows, results, strict=True):
                if result is None:
                    OUTBOX_PUBLISHED.labels(row["type"]).inc()
                    continue
                reason = _refusal_reason(result)
                if reason is None or reason == "nacked":
                    # Left as it was; retried when the broker is back. A nack counts as that too: a confirm
                    # channel whose publish met a quorum queue's leader election stays nacking (RabbitMQ
                    # 3.10), so the channel is dropped below and the row goes again on a fresh one.
                    unanswered = result
                    continue
                # The broker answered but would not take it: back off this row only and report it.
                detail = f"{reason}: {type(result).__name__}: {result}"[:500]
                OUTBOX_PUBLISH_FAILURES.labels(reason).inc()
                log.error("outbox_publish_refused", event_id=str(row["id"]), type=row["type"], reason=detail)
                await conn.execute(_MARK_FAILED, row["id"], detail, self._refused_backoff)
        if unanswered is not None:
            OUTBOX_PUBLISH_FAILURES.labels("broker_unavailable").inc()
            await self._drop_channel(exchange)
            raise BrokerUnavailableError(f"broker did not confirm: {type(unanswered).__name__}: {unanswered}")
        return len(rows)

    async def _publish(self, exchange: AbstractExchange, row: asyncpg.Record) -> None:
        """Publish one row as a PRODUCER span, the child of the span that wrote it (the row's traceparent),
        whose own traceparent goes along as an AMQP header for the consumer."""
        with self._tracer.start_as_current_span(
                f"publish {row['type']}", context=tracing.extract({"traceparent": row["traceparent"]}),
                kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "rabbitmq", "messaging.operation.type": "publish",
                            "messaging.destination.name": broker.EVENTS_EXCHANGE,
                            "messaging.message.id": str(row["id"])},
                record_exception=False):
            await self._publish_message(exchange, row, tracing.current_traceparent() or row["traceparent"])

    async def _publish_message(self, exchange: AbstractExchange, row: asyncpg.Record,
                               traceparent: str | None) -> None:
        message = aio_pika.Message(
            row["body"].encode(),
            message_id=str(row["id"]),  # the consumers' dedupe key; also how aiormq matches a return
            type=row["type"],
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"traceparent": traceparent} if traceparent else None,
        )
        # mandatory + on_return_raises (channel): an event no queue is bound for raises PublishError
        # instead of being confirmed and silently dropped.
        await exchange.publish(message, routing_key=row["type"], mandatory=True, timeout=self._publish_timeout)

    async def _exchange_ready(self) -> AbstractExchange:
        async with self._channel_lock:
            if self._exchange is not None and self._channel is not None and not self._channel.is_closed:
                return self._exchange
            await self._drop_channel(self._exchange)
            try:
                # After any failure the channel is closed and a fresh one opened here, so confirm
                # bookkeeping never outlives the connection it belonged to.
                channel = await asyncio.wait_for(self._open_channel(), self._publish_timeout)
                self._exchange = await broker.declare_exchange(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                OUTBOX_PUBLISH_FAILURES.labels("broker_unavailable").inc()
                raise BrokerUnavailableError(f"no channel: {type(exc).__name__}: {exc}") from exc
            self._channel = channel
            return self._exchange

    async def _open_channel(self) -> AbstractChannel:
        connected = getattr(self._connection, "connected", None)  # a robust connection's "is up" event
        if connected is not None and not connected.is_set():
            raise ConnectionError("broker connection is down (reconnecting)")
        channel = self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel
        return channel

    async def _drop_channel(self, exchange: AbstractExchange | None) -> None:
        """Forget the channel the failed `exchange` belongs to (None: whatever channel is open)."""
        if exchange is not None and exchange is not self._exchange:
            return  # another worker already replaced it
        channel, self._channel, self._exchange = self._channel, None, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2)

    async def _listen(self) -> None:
        """A commit wakes the relay at once (NOTIFY is sent at commit)."""
        await listen_forever(self._dsn, notify_channel(self._schema), self._doorbell, name="outbox")

    async def update_stats(self) -> None:
        """Refresh the unsent count and the lag (age of the oldest unsent row), broker up or not."""
        row = await self._pool.fetchrow(_STATS)
        OUTBOX_UNSENT.set(row["unsent"])
        OUTBOX_LAG_SECONDS.set(row["lag"])

    async def prune(self, chunk: int = 5000) -> int:
        """Delete rows published longer than the retention period ago; return how many."""
        total = 0
        while True:
            status = await self._pool.execute(_PRUNE, self._retention, chunk)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < chunk:
                break
        OUTBOX_PRUNED.inc(total)
        return total

    @staticmethod
    async def _every(seconds: float, job: object) -> None:
        while True:
            try:
                await job()  # type: ignore[operator]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox_job_failed", job=getattr(job, "__name__", "?"), error=type(exc).__name__)
            await asyncio.sleep(seconds)
