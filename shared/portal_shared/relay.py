"""The outbox relay: publishes committed outbox rows to RabbitMQ with confirms, then marks them sent.

Delivery is at-least-once: a row is marked sent only after the broker confirmed it, so a crash between
confirm and commit republishes that batch (consumers dedupe by message id). Rows are claimed with
FOR UPDATE SKIP LOCKED, so replicas share the work and never publish the same row at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from portal_shared import broker
from portal_shared.metrics import (
    OUTBOX_LAG_SECONDS,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
    OUTBOX_UNSENT,
)

log = structlog.get_logger("portal.relay")

_CLAIM = """
SELECT id, type, body::text AS body
FROM outbox
WHERE published_at IS NULL AND next_attempt_at <= now()
ORDER BY created_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_MARK_SENT = "UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = ANY($1::uuid[])"
# An unroutable or refused row waits with exponential backoff instead of blocking the rows behind it.
_MARK_FAILED = """
UPDATE outbox
SET attempts = attempts + 1,
    last_error = $2,
    next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '5 minutes')
WHERE id = $1
"""
_STATS = """
SELECT count(*) AS unsent, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS lag
FROM outbox WHERE published_at IS NULL
"""
_PRUNE = "DELETE FROM outbox WHERE published_at < now() - $1::interval"


def _is_refusal(error: BaseException) -> bool:
    return isinstance(error, (aio_pika.exceptions.DeliveryError, aio_pika.exceptions.PublishError))


class OutboxRelay:
    """Runs as a background task of a service (see `run`)."""

    def __init__(self, pool: asyncpg.Pool, connection: AbstractRobustConnection, *, schema: str,
                 dsn: str, batch_size: int = 200, poll_seconds: float = 1.0,
                 retention: timedelta = timedelta(days=7)) -> None:
        self._pool = pool
        self._connection = connection
        self._schema = schema
        self._dsn = dsn
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retention = retention
        self._wake = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def run(self) -> None:
        """Publish forever; broker or database outages mean backoff and retry, never giving up."""
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        pruner = asyncio.create_task(self._prune_periodically(), name="outbox-prune")
        failures = 0
        try:
            while True:
                try:
                    published = await self.publish_batch()
                    failures = 0
                    if published >= self._batch_size:
                        continue  # more is waiting
                    await self._update_stats()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
                    self._wake.clear()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    delay = min(0.2 * 2 ** failures, 10.0) * (0.5 + random.random() / 2)
                    OUTBOX_PUBLISH_FAILURES.labels(type(exc).__name__).inc()
                    log.warning("relay_retrying", error=type(exc).__name__, detail=str(exc)[:200],
                                delay=round(delay, 2))
                    await self._drop_channel()
                    await asyncio.sleep(delay)
        finally:
            listener.cancel()
            pruner.cancel()
            await asyncio.gather(listener, pruner, return_exceptions=True)
            await self._drop_channel()

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch; return how many rows it claimed."""
        exchange = await self._exchange_ready()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch_size)
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(exchange, row) for row in rows),
                                           return_exceptions=True)
            sent = [row["id"] for row, result in zip(rows, results, strict=True) if result is None]
            if sent:
                await conn.execute(_MARK_SENT, sent)
            broker_down = False
            for row, result in zip(rows, results, strict=True):
                if result is None:
                    OUTBOX_PUBLISHED.labels(row["type"]).inc()
                elif _is_refusal(result):
                    # The broker answered but would not take it (unroutable, nack): back off this row only.
                    reason = f"{type(result).__name__}: {result}"[:500]
                    OUTBOX_PUBLISH_FAILURES.labels("refused").inc()
                    log.error("outbox_publish_refused", event_id=str(row["id"]), type=row["type"],
                              reason=reason)
                    await conn.execute(_MARK_FAILED, row["id"], reason)
                else:
                    broker_down = True  # left as it was; retried when the broker is back
        if broker_down:
            raise ConnectionError("broker did not confirm the batch")
        return len(rows)

    async def _publish(self, exchange: AbstractExchange, row: asyncpg.Record) -> None:
        body: str = row["body"]
        message = aio_pika.Message(
            body.encode(),
            message_id=str(row["id"]),
            type=row["type"],
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # mandatory + on_return_raises: an event no queue is bound for raises instead of vanishing.
        await exchange.publish(message, routing_key=row["type"], mandatory=True, timeout=10)

    async def _exchange_ready(self) -> AbstractExchange:
        if self._exchange is None or self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await broker.declare_exchange(self._channel)
        return self._exchange

    async def _drop_channel(self) -> None:
        channel, self._channel, self._exchange = self._channel, None, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection so a commit wakes the relay at once."""
        channel = f"{self._schema}_outbox"
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
                try:
                    await conn.add_listener(channel, lambda *_: self._wake.set())
                    self._wake.set()  # rows may have committed while we were not listening
                    while not conn.is_closed():
                        await asyncio.sleep(5)
                        await conn.execute("SELECT 1")
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox_listen_lost", error=type(exc).__name__)
                await asyncio.sleep(2)

    async def _update_stats(self) -> None:
        row = await self._pool.fetchrow(_STATS)
        OUTBOX_UNSENT.set(row["unsent"])
        OUTBOX_LAG_SECONDS.set(float(row["lag"]))

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(600)
            try:
                await self._pool.execute(_PRUNE, self._retention)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox_prune_failed", error=type(exc).__name__)
