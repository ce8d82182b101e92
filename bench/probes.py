"""R1, R3 and the relay measured on a running stack, each beside a control that does not touch the data.

Used by the benches that compare one stack with itself in two states (more data, synchronous
replication on or off), where the two states cannot be interleaved round by round: each probe returns
its rate and the rate of a control measured right after it, whose work does not depend on the state,
so that `rate ÷ control` cancels the machine's drift between the states.

- R1: GET /api/profile through nginx; control GET /health/profile (the same hops, no table read).
- R3: password sign-ins/s through nginx; control raw argon2id hashes/s with profile's thread count.
- Relay: the outbox relay draining committed rows (claim, publish, confirm, mark sent) in a `bench`
  schema of the stack's own database; control the bare aio-pika confirmed-publish loop (no database).
- Relay → consumer: events written one per transaction, relayed, and consumed by a consumer process
  whose inbox claim and effect commit together; control the same bare publish loop.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from portal_shared import broker, db
from portal_shared.migrate import run_migrations
from profile_service.config import Settings

from bench import bench_relay
from bench.bench_http import (
    GET_CONCURRENCY,
    SIGNIN_CONCURRENCY,
    USER_PASSWORD,
    SignInLoad,
    create_users,
    getter,
    raw_hash_rate,
    sign_in,
)
from bench.load import closed_loop

SECONDS = 4.0
RELAY_EVENTS = 6_000
RELAY_WORKERS = 2
CONSUMED_EVENTS = 3_000


@dataclass(frozen=True, slots=True)
class Sample:
    rate: float
    control: float

    @property
    def normalized(self) -> float:
        return self.rate / self.control


class StackProbes:
    """The probes on one running LocalStack; `open()` before, `close()` after."""

    # R3 signs in round robin over the users and over bench_http's 48 client addresses: with 1,000 users a
    # (user, address) pair comes back only after 6,000 sign-ins, more than a bench makes, so every sign-in
    # is from a new device and emails its notice, in every state compared (with 200 users, pairs repeat
    # after 600: the first state would pay for the notices and the second not).
    def __init__(self, stack: Any, *, signin_users: int = 1000) -> None:
        self.stack = stack
        self.gateway = f"http://127.0.0.1:{stack.ports.gateway}"
        self.signin_users = signin_users
        self.hash_threads = Settings.from_env({**stack.env, "DATABASE_URL": stack.database_urls["profile"]}
                                              ).hash_concurrency
        self.http: aiohttp.ClientSession | None = None
        self.signins: SignInLoad | None = None
        self.raw_session = ""
        self.bench_pool: asyncpg.Pool | None = None
        self.bench_dsn = ""
        self.amqp_url = ""
        self.amqp: aio_pika.abc.AbstractConnection | None = None

    async def open(self) -> None:
        emails = await create_users(self.stack.database_urls["profile"], self.signin_users)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                          cookie_jar=aiohttp.DummyCookieJar())
        self.raw_session = await sign_in(self.http, self.gateway, emails[0], USER_PASSWORD)
        self.signins = SignInLoad(self.gateway, emails)
        self.bench_dsn = await _bench_schema(self.stack.postgres.admin_dsn)
        self.bench_pool = await db.create_pool(self.bench_dsn, schema=bench_relay.SCHEMA, min_size=4, max_size=20)
        self.amqp_url = await asyncio.to_thread(_bench_vhost, self.stack.rabbitmq)
        self.amqp = await broker.connect(self.amqp_url, name="bench-probes")
        channel = await self.amqp.channel()
        await broker.declare_service_queue(channel, bench_relay.SERVICE, [bench_relay.TYPE])
        await channel.close()

    async def reconnect(self) -> None:
        """A new pool for the relay probe (after the database ended its sessions)."""
        assert self.bench_pool is not None
        self.bench_pool.terminate()
        self.bench_pool = await db.create_pool(self.bench_dsn, schema=bench_relay.SCHEMA, min_size=4, max_size=20)

    async def close(self) -> None:
        if self.signins is not None:
            await self.signins.close()
        if self.http is not None:
            await self.http.close()
        if self.amqp is not None:
            await self.amqp.close()
        if self.bench_pool is not None:
            await self.bench_pool.close()

    async def warm_up(self) -> None:
        """Connections, prepared statements, caches; failures here are not counted (after the database
        ended every session, each pooled connection fails once before it is replaced)."""
        assert self.http is not None and self.signins is not None
        await closed_loop(getter(self.http, f"{self.gateway}/api/profile", self.raw_session),
                          concurrency=GET_CONCURRENCY, seconds=2)
        await closed_loop(self.signins.call, concurrency=SIGNIN_CONCURRENCY, seconds=5)
        await self.relay(events=1_000)

    async def r1(self, seconds: float = SECONDS) -> Sample:
        assert self.http is not None
        profile = getter(self.http, f"{self.gateway}/api/profile", self.raw_session)
        health = getter(self.http, f"{self.gateway}/health/profile", self.raw_session)
        result = await closed_loop(profile, concurrency=GET_CONCURRENCY, seconds=seconds)
        control = await closed_loop(health, concurrency=GET_CONCURRENCY, seconds=seconds)
        _no_errors("R1", result.errors + control.errors)
        return Sample(result.rate, control.rate)

    async def r3(self, seconds: float = SECONDS) -> Sample:
        assert self.signins is not None
        result = await closed_loop(self.signins.call, concurrency=SIGNIN_CONCURRENCY, seconds=seconds)
        _no_errors("R3", result.errors)
        return Sample(result.requests / result.seconds, await raw_hash_rate(self.hash_threads, seconds))

    async def relay(self, events: int = RELAY_EVENTS) -> Sample:
        assert self.bench_pool is not None and self.amqp is not None
        rate = await bench_relay.relay_rate(self.bench_pool, self.amqp, self.bench_dsn, events, RELAY_WORKERS)
        await bench_relay.purge(self.amqp)
        control = await bench_relay.baseline(self.amqp, events)
        await bench_relay.purge(self.amqp)
        return Sample(rate, control)

    async def relay_to_consumer(self, events: int = CONSUMED_EVENTS) -> Sample:
        """The consumer runs only here (it would take the other probes' messages), in its own process."""
        assert self.bench_pool is not None and self.amqp is not None
        consumer = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(bench_relay.__file__)), "--consume", self.bench_dsn, self.amqp_url,
            stdout=asyncio.subprocess.PIPE)
        try:
            assert consumer.stdout is not None
            await asyncio.wait_for(consumer.stdout.readline(), 30)
            rate, _ = await bench_relay.end_to_end(self.bench_pool, self.amqp, self.bench_dsn, events, rate=None,
                                                   keep_inbox=True)
        finally:
            consumer.terminate()
            await consumer.wait()
        await bench_relay.purge(self.amqp)
        control = await bench_relay.baseline(self.amqp, events)
        await bench_relay.purge(self.amqp)
        return Sample(rate, control)


def _no_errors(name: str, errors: int) -> None:
    if errors:
        raise RuntimeError(f"{name}: {errors} requests failed")


def _bench_vhost(rabbitmq: Any) -> str:
    """A vhost of its own on the stack's broker: the services' queues bind every contract event type on
    the default one, so the probes' events there would reach the notifier."""
    rabbitmq.management_put(f"vhosts/{bench_relay.SCHEMA}")
    rabbitmq.management_put(f"permissions/{bench_relay.SCHEMA}/guest",
                            {"configure": ".*", "write": ".*", "read": ".*"})
    return f"{rabbitmq.amqp_url}{bench_relay.SCHEMA}"


async def _bench_schema(admin_dsn: str) -> str:
    """A `bench` schema with the shared outbox and inbox in the stack's own database (so it shares the
    server and its cache with the services' tables), and the consumer's effects table."""
    dsn = admin_dsn.rsplit("/", 1)[0] + "/portal"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {bench_relay.SCHEMA}")
        await run_migrations(conn, (), schema=bench_relay.SCHEMA)
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {bench_relay.SCHEMA}.effects "
                           "(message_id text PRIMARY KEY, at float8 NOT NULL)")
    finally:
        await conn.close()
    return dsn
