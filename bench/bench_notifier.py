"""Notifier benchmark (R8, R10): committed events → emails accepted by an SMTP sink, against a bare
publish → consume → aiosmtplib loop in the same run; and event → SMTP-accept latency at half the max rate.

    PYTHONPATH=. uv run python -m bench.bench_notifier [--events 4000] [--rounds 3] [--latency-seconds 10]

Everything on loopback: local PostgreSQL and RabbitMQ (tests.support.backends.LocalBackend), an aiosmtpd
sink in its own process (bench/notifier_sink.py) that records each Message-ID's accept time.

- Notifier path: events written to the profile schema's outbox (portal_shared.outbox.enqueue, in
  transactions), published by the real OutboxRelay (in this process, as the profile service runs it),
  consumed by the real notifier (`python -m notifier_service`, its own process) → email job → dispatcher
  → SMTP. Throughput: a backlog of committed events, from the relay's start to the last accept.
- Baseline: confirmed aio-pika publishes of the same number of messages to a quorum queue, consumed by
  bench/notifier_bare.py (its own process), each sent as a prebuilt email over one reused aiosmtplib
  connection to the same sink and acked. From the first publish to the last accept.
- Latency: one event per transaction at half the notifier's measured maximum, commit → sink accept.
Goals (issue 6/9): notifier/bare ≥ 0.5 and ≥ 500 emails/s; p50 ≤ 50 ms, p99 ≤ 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench`, `tests.support` when run as a file

from portal_devstack.process import free_port
from portal_shared import broker, db
from portal_shared.events import (
    Event,
    PasswordChanged,
    RecoveryCodeUsed,
    SecurityKeyAdded,
    TotpEnabled,
    TwoFactorEnabled,
    UserCreated,
)
from portal_shared.migrate import run_migrations
from portal_shared.outbox import enqueue
from portal_shared.relay import OutboxRelay

from bench import notifier_cpu
from bench.report import Figure, percentile, spread, write
from tests.conftest import new_stack_env, service_environ
from tests.support.backends import LocalBackend

REPO = Path(__file__).resolve().parents[1]
PROFILE_MIGRATIONS = REPO / "services" / "profile" / "profile_service" / "migrations"
USERS = 200
BARE_QUEUE = "bench.notifier-bare"
PUBLISH_WINDOW = 200  # the relay's batch size: the baseline publishes as many at once


class Sink:
    """The SMTP sink process and its stdin/stdout command channel."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.notifier_sink", str(self.port), cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**27)
        assert await self._line() == "ready"

    async def _line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        return (await asyncio.wait_for(self._process.stdout.readline(), 30)).decode().strip()

    async def command(self, command: str) -> str:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command.encode() + b"\n")
        await self._process.stdin.drain()
        return await self._line()

    async def count(self) -> int:
        return int(await self.command("count"))

    async def dump(self) -> dict[str, float]:
        return json.loads(await self.command("dump"))

    async def wait_for(self, count: int, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while (got := await self.count()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sink accepted {got} of {count} emails within {within} s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()


async def start_process(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, *args, cwd=REPO, env=env,
                                                stdout=asyncio.subprocess.PIPE)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def wait_ready(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready within {within} s")
            await asyncio.sleep(0.2)


def event_for(i: int, users: list[str]) -> Event:
    """A mix of the contract's emailing events, each with a "this wasn't me" link to sign."""
    user = users[i % len(users)]
    match i % 5:
        case 0:
            return PasswordChanged(user_id=user, method="change")
        case 1:
            return TotpEnabled(user_id=user)
        case 2:
            return SecurityKeyAdded(user_id=user, key_id=f"k{i}", name=f"YubiKey <{i}> & \"co\"")
        case 3:
            return RecoveryCodeUsed(user_id=user, remaining=i % 10)
        case _:
            return TwoFactorEnabled(user_id=user, method="totp")


class NotifierPath:
    """Outbox (profile schema) → OutboxRelay → RabbitMQ → notifier process → SMTP sink."""

    def __init__(self, pool: asyncpg.Pool, connection: aio_pika.abc.AbstractConnection, dsn: str) -> None:
        self.pool, self.connection, self.dsn = pool, connection, dsn
        self._relay: asyncio.Task[None] | None = None

    def start_relay(self) -> None:
        relay = OutboxRelay(self.pool, self.connection, schema="profile", dsn=self.dsn, poll_seconds=0.2)
        self._relay = asyncio.create_task(relay.run())

    async def stop_relay(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
            self._relay = None

    async def fill(self, events: list[Event], per_transaction: int = 500) -> list[str]:
        ids = []
        for start in range(0, len(events), per_transaction):
            async with self.pool.acquire() as conn, conn.transaction():
                for event in events[start:start + per_transaction]:
                    ids.append((await enqueue(conn, event, source="bench")).id)
        return ids


async def notifier_rate(path: NotifierPath, sink: Sink, events: list[Event]) -> float:
    """Emails/s: a committed backlog, from the relay's start to the sink's last accept."""
    await sink.command("reset")
    await path.stop_relay()
    await path.fill(events)
    started = time.time()
    path.start_relay()
    await sink.wait_for(len(events))
    accepted = await sink.dump()
    return len(events) / (max(accepted.values()) - started)


async def bare_rate(connection: aio_pika.abc.AbstractConnection, sink: Sink, count: int) -> float:
    """Emails/s: confirmed publishes → the bare consumer process → the sink, first publish to last accept."""
    await sink.command("reset")
    channel = await connection.channel(publisher_confirms=True)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    body = json.dumps({"type": PasswordChanged.type, "data": {"user_id": "u", "method": "change"}}).encode()
    started = time.time()
    for start in range(0, count, PUBLISH_WINDOW):
        await asyncio.gather(*(
            channel.default_exchange.publish(
                aio_pika.Message(body, message_id=mid, type=PasswordChanged.type, content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=BARE_QUEUE)
            for mid in ids[start:start + PUBLISH_WINDOW]))
    await channel.close()
    await sink.wait_for(count)
    accepted = await sink.dump()
    return count / (max(accepted.values()) - started)


async def latencies(path: NotifierPath, sink: Sink, users: list[str], rate: float, seconds: float) -> list[float]:
    """Commit → SMTP accept (ms) of one event per transaction, written at `rate`/s."""
    await sink.command("reset")
    count = max(1, int(rate * seconds))
    committed: dict[str, float] = {}

    async def write_one(i: int) -> None:
        async with path.pool.acquire() as conn:
            async with conn.transaction():
                envelope = await enqueue(conn, event_for(i, users), source="bench")
            committed[envelope.id] = time.time()

    started = time.perf_counter()
    writes = []
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writes.append(asyncio.create_task(write_one(i)))
    await asyncio.gather(*writes)
    await sink.wait_for(count)
    accepted = await sink.dump()
    return sorted((accepted[i] - at) * 1000 for i, at in committed.items())


async def run(events: int = 4000, rounds: int = 3, latency_seconds: float = 10.0) -> list[Figure]:
    """The notifier's figures for `make bench`."""
    return await main(events, rounds, latency_seconds)


async def main(events: int, rounds: int, latency_seconds: float, profile: str | None = None) -> list[Figure]:
    backend = LocalBackend()
    sink = Sink()
    processes: list[asyncio.subprocess.Process] = []
    try:
        await sink.start()
        stack_env = await new_stack_env(backend, smtp_port=sink.port)
        profile_dsn = stack_env["PROFILE_DATABASE_URL"]
        pool = await db.create_pool(profile_dsn, schema="profile", min_size=4, max_size=20)
        async with pool.acquire() as conn:
            await run_migrations(conn, PROFILE_MIGRATIONS, schema="profile")
        connection = await broker.connect(stack_env["AMQP_URL"], name="bench-notifier")

        http_port = free_port()
        env = {**os.environ, **service_environ(stack_env, "notifier"), "HTTP_PORT": str(http_port),
               "LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
        processes.append(await start_process("-m", "notifier_service", env=env))
        await wait_ready(f"http://127.0.0.1:{http_port}/health/ready")
        processes.append(await start_process("-m", "bench.notifier_bare", stack_env["AMQP_URL"], BARE_QUEUE,
                                             str(sink.port)))
        assert processes[-1].stdout is not None
        await asyncio.wait_for(processes[-1].stdout.readline(), 30)

        path = NotifierPath(pool, connection, profile_dsn)
        users = [str(uuid.uuid4()) for _ in range(USERS)]
        await path.fill([UserCreated(user_id=u, email=f"user-{u[:8]}@client.example", name=f"User {u[:4]} Ünïcode")
                         for u in users])
        path.start_relay()
        notifier_db = await asyncpg.connect(stack_env["NOTIFIER_DATABASE_URL"])
        deadline = time.monotonic() + 60
        while await notifier_db.fetchval("SELECT count(*) FROM notifier.users") < USERS:
            if time.monotonic() > deadline:
                raise TimeoutError("the notifier did not project the users")
            await asyncio.sleep(0.1)
        await notifier_db.close()

        # Warm-up of both paths (connections, JIT-less caches, template compilation).
        await notifier_rate(path, sink, [event_for(i, users) for i in range(500)])
        await bare_rate(connection, sink, 500)

        if profile:  # py-spy on the notifier process through the measured rounds (collapsed stacks)
            processes.append(await asyncio.create_subprocess_exec(
                "py-spy", "record", "--format", "raw", "-o", profile, "--pid", str(processes[0].pid),
                "--rate", "200", "--nonblocking"))
        assert sink.pid is not None
        cpu_groups = {"notifier": {processes[0].pid}, "bare": {processes[1].pid}, "sink": {sink.pid},
                      "bench (relay, writer)": {os.getpid()}}
        cpu_markers = {"postgres": str(backend.root / "pg"), "rabbitmq": str(backend.root / "rabbitmq")}
        bare, notified = [], []
        cpu: dict[str, dict[str, float]] = {}
        for _ in range(rounds):  # interleaved, so drift on the machine hits both alike
            before = notifier_cpu.snapshot(cpu_groups, cpu_markers)
            bare.append(await bare_rate(connection, sink, events))
            middle = notifier_cpu.snapshot(cpu_groups, cpu_markers)
            notified.append(await notifier_rate(path, sink, [event_for(i, users) for i in range(events)]))
            after = notifier_cpu.snapshot(cpu_groups, cpu_markers)
            cpu = {"bare": notifier_cpu.per_item_ms(before, middle, events),
                   "notifier": notifier_cpu.per_item_ms(middle, after, events)}
            print(f"  round: bare {bare[-1]:.0f}/s, notifier {notified[-1]:.0f}/s", flush=True)
        for run_name, per_email in cpu.items():  # the last round's CPU per email, by process
            print(f"  CPU ms per email, {run_name} run: {per_email} (total {sum(per_email.values()):.2f} ms)")
        if profile:
            spy = processes.pop()
            spy.send_signal(2)  # SIGINT: py-spy writes its file
            await spy.wait()
        bare_max, notifier_max = statistics.median(bare), statistics.median(notified)
        ratio = notifier_max / bare_max

        rate = notifier_max / 2
        lat = await latencies(path, sink, users, rate, latency_seconds)
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        print(f"bare publish→consume→aiosmtplib : {bare_max:8.0f} emails/s  (runs: {[round(r) for r in bare]})")
        print(f"notifier (outbox→relay→notifier): {notifier_max:8.0f} emails/s  (runs: {[round(r) for r in notified]})")
        print(f"ratio notifier/bare             : {ratio:.2f}  (goal ≥ 0.50)")
        print(f"event→SMTP accept at {rate:.0f}/s ({len(lat)} events): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {lat[-1]:.1f} ms")
        await path.stop_relay()
        await connection.close()
        await pool.close()
        return [
            Figure("R8 notifier emails/s ÷ bare publish→consume→send", ratio, ">= 0.5", "×",
                   f"notifier {notifier_max:.0f}/s vs bare {bare_max:.0f}/s; {spread(notified)}"),
            Figure("R8 notifier sustained emails/s (committed events → SMTP accept)", notifier_max, ">= 500",
                   "emails/s", f"{spread(notified)}; CPU ms per email: {cpu.get('notifier')}"),
            Figure("R10 event→SMTP accept p50 at half max rate", p50, "<= 50", "ms",
                   f"{len(lat)} events at {rate:.0f}/s"),
            Figure("R10 event→SMTP accept p99 at half max rate", p99, "<= 250", "ms",
                   f"max {lat[-1]:.1f} ms at {rate:.0f}/s"),
        ]
    finally:
        for process in reversed(processes):
            await stop_process(process)
        await sink.stop()
        backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--profile", metavar="FILE", help="py-spy the notifier during the rounds (collapsed stacks)")
    args = parser.parse_args()
    figures = asyncio.run(main(args.events, args.rounds, args.latency_seconds, args.profile))
    for figure in figures:
        print(figure.line())
    print(f"results in {write('bench-notifier', figures)}.json and .md")
