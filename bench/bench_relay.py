"""Outbox relay benchmark: throughput with confirms vs a bare aio-pika confirmed-publish loop, and
commit→consumer-effect latency at half of the maximum rate.

    uv run python -m bench.bench_relay [--events 20000] [--latency-seconds 10]

Starts its own local PostgreSQL (fsync off, as in the tests) and RabbitMQ on loopback ports. The
baseline publishes the same persistent, mandatory messages to the same exchange and quorum queue, in
concurrent windows of the relay's batch size, awaiting every confirm: the fastest plain aio-pika loop,
with no database. Goals (issue 3): relay/baseline ≥ 0.7; p99 commit→effect ≤ 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import aio_pika
import asyncpg

from bench.report import Figure, spread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from portal_shared import broker, db
from portal_shared.consumer import EventConsumer
from portal_shared.events import Envelope, encode
from portal_shared.events.contracts import TotpEnabled
from portal_shared.migrate import run_migrations
from portal_shared.outbox import enqueue
from portal_shared.relay import OutboxRelay

from tests.support.backends import LocalBackend

SCHEMA = "bench"
SERVICE = "bench"
TYPE = TotpEnabled.type
BATCH = 200


async def setup_database(admin_dsn: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    await run_migrations(conn, (), schema=SCHEMA)  # only the shared outbox/inbox tables
    await conn.execute(f"CREATE TABLE {SCHEMA}.effects (message_id text PRIMARY KEY, at float8 NOT NULL)")
    await conn.close()
    return dsn


async def wait_for_zero(pool: asyncpg.Pool, query: str, *args: object, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while await pool.fetchval(query, *args) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not done after {within} s: {query}")
        await asyncio.sleep(0.02)


async def fill_outbox(pool: asyncpg.Pool, count: int) -> None:
    for start in range(0, count, 1000):
        async with pool.acquire() as conn, conn.transaction():
            for i in range(start, min(start + 1000, count)):
                await enqueue(conn, TotpEnabled(user_id=f"u{i}"), source="bench")


async def baseline(connection: aio_pika.abc.AbstractConnection, count: int) -> float:
    """Events/s of a bare confirmed-publish loop (windows of BATCH concurrent publishes)."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await broker.declare_exchange(channel)
    bodies = [(e.id, encode(e)) for e in (Envelope.wrap(TotpEnabled(user_id=f"u{i}"), source="bench")
                                          for i in range(count))]
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        await asyncio.gather(*(
            exchange.publish(aio_pika.Message(body, message_id=mid, type=TYPE, content_type="application/json",
                                              delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                             routing_key=TYPE, mandatory=True)
            for mid, body in bodies[start:start + BATCH]))
    elapsed = time.perf_counter() - started
    await channel.close()
    return count / elapsed


async def relay_rate(pool: asyncpg.Pool, connection: aio_pika.abc.AbstractConnection, dsn: str,
                     count: int, workers: int) -> float:
    """Events/s of the relay draining `count` committed rows (claim, publish, confirm, mark sent)."""
    await pool.execute("TRUNCATE outbox")
    await fill_outbox(pool, count)
    relay = OutboxRelay(pool, connection, schema=SCHEMA, dsn=dsn, batch_size=BATCH, workers=workers,
                        poll_seconds=0.05)
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    await wait_for_zero(pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return count / elapsed


async def purge(connection: aio_pika.abc.AbstractConnection) -> None:
    channel = await connection.channel()
    queue = await channel.get_queue(broker.queue_name(SERVICE))
    await queue.purge()
    await channel.close()


async def consume_forever(dsn: str, amqp_url: str) -> None:
    """The consumer side, run in its own process (as the notifier is): effect = a row with its time."""
    import signal

    pool = await db.create_pool(dsn, schema=SCHEMA, min_size=4, max_size=20)
    connection = await broker.connect(amqp_url, name="bench-consumer")

    async def record(conn: asyncpg.Connection, envelope: Envelope) -> None:
        await conn.execute("INSERT INTO effects (message_id, at) VALUES ($1, $2)", envelope.id, time.time())

    consumer = EventConsumer(pool, connection, service=SERVICE, handlers={TYPE: record}, prefetch=64)
    await consumer.start()
    print("consuming", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await consumer.stop()
    await connection.close()
    await pool.close()


async def write_events(pool: asyncpg.Pool, count: int, *, rate: float | None,
                       committed: dict[str, float]) -> None:
    """`count` events, one per transaction; paced at `rate`/s, or as fast as 8 writers go."""
    async def write_one(i: int) -> None:
        async with pool.acquire() as conn:
            async with conn.transaction():
                envelope = await enqueue(conn, TotpEnabled(user_id=f"u{i}"), source="bench")
            committed[envelope.id] = time.time()

    if rate is None:
        async def writer(n: int) -> None:
            for i in range(n, count, 8):
                await write_one(i)
        await asyncio.gather(*(writer(n) for n in range(8)))
        return
    started = time.perf_counter()
    writes = []
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writes.append(asyncio.create_task(write_one(i)))
    await asyncio.gather(*writes)


async def end_to_end(pool: asyncpg.Pool, connection: aio_pika.abc.AbstractConnection, dsn: str, count: int,
                     rate: float | None, *, keep_inbox: bool = False) -> tuple[float, list[float]]:
    """(events/s from first write to last effect, commit→effect latencies in ms). `keep_inbox`: the inbox's
    rows stay (a bench of how its size costs); the new events' ids are new, so none is a duplicate."""
    await pool.execute("TRUNCATE outbox; TRUNCATE effects" + ("" if keep_inbox else "; TRUNCATE inbox"))
    relay = OutboxRelay(pool, connection, schema=SCHEMA, dsn=dsn, batch_size=BATCH)
    relay_task = asyncio.create_task(relay.run())
    await asyncio.sleep(1)  # listener up
    committed: dict[str, float] = {}
    started = time.perf_counter()
    await write_events(pool, count, rate=rate, committed=committed)
    await wait_for_zero(pool, "SELECT $1::int - count(*) FROM effects", count)
    elapsed = time.perf_counter() - started
    relay_task.cancel()
    await asyncio.gather(relay_task, return_exceptions=True)
    rows = await pool.fetch("SELECT message_id, at FROM effects")
    return count / elapsed, sorted((r["at"] - committed[r["message_id"]]) * 1000 for r in rows)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


async def run(events: int = 10_000, latency_seconds: float = 10.0, workers: int = 2) -> list[Figure]:
    """The relay's figures for `make bench`."""
    return await main(events, latency_seconds, workers)


async def main(events: int, latency_seconds: float, workers: int) -> list[Figure]:
    backend = LocalBackend()
    try:
        dsn = await setup_database(backend.admin_dsn)
        pool = await db.create_pool(dsn, schema=SCHEMA, min_size=4, max_size=20)
        connection = await broker.connect(backend.amqp_url(), name="bench")
        channel = await connection.channel()
        await broker.declare_service_queue(channel, SERVICE, [TYPE])
        await channel.close()

        await baseline(connection, 2000)  # warm-up
        await purge(connection)
        bare, relayed = [], []
        for _ in range(3):  # interleaved, so drift on the machine hits both alike
            bare.append(await baseline(connection, events))
            await purge(connection)
            relayed.append(await relay_rate(pool, connection, dsn, events, workers))
            await purge(connection)
        bare_rate, relay_max = statistics.median(bare), statistics.median(relayed)
        ratio = relay_max / bare_rate
        print(f"bare aio-pika confirmed publish : {bare_rate:8.0f} events/s  (runs: {[round(r) for r in bare]})")
        print(f"outbox relay (workers={workers})      : {relay_max:8.0f} events/s  "
              f"(runs: {[round(r) for r in relayed]})")
        print(f"throughput ratio relay/bare     : {ratio:.2f}  (goal ≥ 0.70) {'OK' if ratio >= 0.7 else 'MISSED'}")

        consumer = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--consume", dsn, backend.amqp_url(), stdout=asyncio.subprocess.PIPE)
        assert consumer.stdout is not None
        await asyncio.wait_for(consumer.stdout.readline(), 30)
        try:
            e2e_max, _ = await end_to_end(pool, connection, dsn, events // 2, rate=None)
            rate = min(relay_max, e2e_max) / 2
            _, lat = await end_to_end(pool, connection, dsn, int(rate * latency_seconds), rate=rate)
        finally:
            consumer.terminate()
            await consumer.wait()
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        print(f"end to end maximum (8 writers, one event per transaction → relay → consumer process): "
              f"{e2e_max:.0f} events/s")
        print(f"commit→effect at {rate:.0f} events/s = half of the maximum ({len(lat)} events): "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
        print(f"latency ratio p99/250 ms        : {p99 / 250:.2f}  (goal ≤ 1.00) {'OK' if p99 <= 250 else 'MISSED'}")
        await connection.close()
        await pool.close()
        return [
            Figure("R6 outbox relay ÷ bare aio-pika confirmed publish", ratio, ">= 0.7", "×",
                   f"relay {relay_max:.0f}/s vs bare {bare_rate:.0f}/s; {spread(relayed)}"),
            Figure("outbox commit→consumer effect p99 at half max rate", p99, "<= 250", "ms",
                   f"p50 {p50:.1f} ms at {rate:.0f} events/s"),
        ]
    finally:
        backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--consume", nargs=2, metavar=("DSN", "AMQP_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        asyncio.run(consume_forever(*args.consume))
    else:
        asyncio.run(main(args.events, args.latency_seconds, args.workers))
