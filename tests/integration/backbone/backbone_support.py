"""A throwaway service schema with only the shared outbox/inbox tables, plus relay/consumer helpers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from portal_shared import broker, db
from portal_shared.consumer import EventConsumer, Handler
from portal_shared.events import Envelope, Event
from portal_shared.events.contracts import TotpEnabled
from portal_shared.migrate import run_migrations
from portal_shared.outbox import enqueue
from portal_shared.relay import OutboxRelay
from prometheus_client import REGISTRY

SERVICE = "notifier"  # its DATABASE_URL and schema; the queues are `notifier.events` / `notifier.dead-letter`
EFFECTS_DDL = """
CREATE TABLE effects (
    seq        bigserial PRIMARY KEY,
    message_id text NOT NULL,
    type       text NOT NULL,
    user_id    text NOT NULL
)
"""


async def record_effect(conn: asyncpg.Connection, envelope: Envelope) -> None:
    """The test handlers' effect: one row per handled event (no unique key, so a second effect shows)."""
    await conn.execute("INSERT INTO effects (message_id, type, user_id) VALUES ($1, $2, $3)",
                       envelope.id, envelope.type, envelope.event.user_id)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def wait_until(check: Callable[[], Awaitable[bool]], *, within: float, what: str,
                     interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Backbone:
    dsn: str
    amqp_url: str
    pool: asyncpg.Pool
    connection: AbstractRobustConnection
    schema: str = SERVICE
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _consumers: list[EventConsumer] = field(default_factory=list)
    _connections: list[AbstractRobustConnection] = field(default_factory=list)

    async def write(self, event: Event) -> Envelope:
        async with self.pool.acquire() as conn, conn.transaction():
            return await enqueue(conn, event, source="test")

    async def write_many(self, count: int, *, prefix: str = "u", per_transaction: int = 1) -> list[Envelope]:
        written: list[Envelope] = []
        for start in range(0, count, per_transaction):
            async with self.pool.acquire() as conn, conn.transaction():
                for i in range(start, min(start + per_transaction, count)):
                    written.append(await enqueue(conn, TotpEnabled(user_id=f"{prefix}{i}"), source="test"))
        return written

    def relay(self, connection: AbstractRobustConnection | None = None, **options: Any) -> OutboxRelay:
        options.setdefault("max_backoff_seconds", 0.5)
        return OutboxRelay(self.pool, connection or self.connection, schema=self.schema, dsn=self.dsn, **options)

    def start_relay(self, connection: AbstractRobustConnection | None = None, **options: Any) -> OutboxRelay:
        relay = self.relay(connection, **options)
        self._tasks.append(asyncio.create_task(relay.run()))
        return relay

    async def new_connection(self) -> AbstractRobustConnection:
        connection = await broker.connect(self.amqp_url, name="backbone-test", reconnect_interval=0.5)
        self._connections.append(connection)
        return connection

    async def start_consumer(self, handlers: dict[str, Handler] | None = None, **options: Any) -> EventConsumer:
        handlers = handlers or {TotpEnabled.type: record_effect}
        options.setdefault("retry_base_seconds", 0.05)
        consumer = EventConsumer(self.pool, self.connection, service=SERVICE, handlers=handlers, **options)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def test_queue(self, *routing_keys: str) -> tuple[AbstractChannel, AbstractQueue]:
        """A queue of the test's own, bound to `routing_keys` on portal.events."""
        channel = await self.connection.channel()
        exchange = await broker.declare_exchange(channel)
        queue = await channel.declare_queue(exclusive=True)
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)
        return channel, queue

    async def drain(self, queue: AbstractQueue, count: int, *, within: float) -> list[AbstractIncomingMessage]:
        """Up to `count` messages, waiting at most `within` seconds for them."""
        got: list[AbstractIncomingMessage] = []
        deadline = time.monotonic() + within
        while len(got) < count and time.monotonic() < deadline:
            message = await queue.get(no_ack=True, fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            got.append(message)
        return got

    async def settled(self) -> None:
        """Every message queued before now has been handled: wait for the effect of a sentinel event written
        now (a late duplicate of an earlier message, queued before the sentinel, is delivered before it).
        A positive signal instead of a sleep; the sentinel adds one effect."""
        [sentinel] = await self.write_many(1, prefix="sentinel-")
        for _ in range(400):
            if await self.pool.fetchval("SELECT count(*) FROM effects WHERE message_id = $1", sentinel.id):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the sentinel event was not handled")

    async def effects(self) -> tuple[int, int]:
        """(total effect rows, distinct message ids among them)."""
        row = await self.pool.fetchrow("SELECT count(*) AS total, count(DISTINCT message_id) AS distinct FROM effects")
        return row["total"], row["distinct"]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.stop(grace_seconds=2)
        for connection in [*self._connections, self.connection]:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
        await self.pool.close()


async def dead_letter_count(backbone: Backbone) -> int:
    """How many messages wait in the service's dead-letter queue."""
    channel = await backbone.connection.channel()
    try:
        queue = await channel.declare_queue(broker.dead_letter_queue_name(SERVICE), passive=True)
        return queue.declaration_result.message_count or 0
    finally:
        await channel.close()


async def open_backbone(stack_env: dict[str, str], tmp_path: Path) -> Backbone:
    dsn = stack_env[f"{SERVICE.upper()}_DATABASE_URL"]
    conn = await asyncpg.connect(dsn)
    try:
        await run_migrations(conn, (), schema=SERVICE)  # only the shared outbox/inbox tables
        await conn.execute(f"SET search_path TO {SERVICE}")
        await conn.execute(EFFECTS_DDL)
    finally:
        await conn.close()
    # The services' own pool (with its jsonb codec), as in production.
    pool = await db.create_pool(dsn, schema=SERVICE, min_size=2, max_size=20)
    connection = await broker.connect(stack_env["AMQP_URL"], name="backbone-test", reconnect_interval=0.5)
    return Backbone(dsn=dsn, amqp_url=stack_env["AMQP_URL"], pool=pool, connection=connection)
