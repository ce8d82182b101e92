"""Helpers of `make faults`: the whole stack with handles to kill and respawn its parts, event writers, mail counts."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from portal_devstack.process import Child, spawn, tcp_open
from portal_devstack.stack import REPO, LocalStack
from portal_shared import broker, db
from portal_shared.db_bootstrap import SERVICE_SCHEMAS, dsn_for
from portal_shared.events import Envelope, Event
from portal_shared.outbox import enqueue

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


class MailCounter:
    """Counts Message-IDs in the sink's directory, reading each new .eml file once (headers only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen_files: set[str] = set()
        self.ids: Counter[str] = Counter()

    def scan(self) -> Counter[str]:
        if self.directory.exists():
            for path in self.directory.glob("*.eml"):
                if path.name in self._seen_files:
                    continue
                try:
                    head = path.read_bytes()[:8192]
                except OSError:
                    continue
                match = _MESSAGE_ID.search(head)
                if match is None:
                    continue  # still being written: read it next time
                self._seen_files.add(path.name)
                self.ids[match.group(1).decode()] += 1
        return self.ids

    def arrived(self, event_ids: list[str]) -> int:
        ids = self.scan()
        return sum(1 for e in event_ids if ids[f"<{e}@portal>"] > 0)

    def outcome(self, event_ids: list[str]) -> tuple[int, int]:
        """(lost, duplicates) over `event_ids`."""
        ids = self.scan()
        lost = sum(1 for e in event_ids if ids[f"<{e}@portal>"] == 0)
        duplicates = sum(max(ids[f"<{e}@portal>"] - 1, 0) for e in event_ids)
        return lost, duplicates

    async def wait_all(self, event_ids: list[str], *, within: float) -> float | None:
        """Seconds until every event's email arrived, or None after `within`."""
        start = time.monotonic()
        while True:
            if self.arrived(event_ids) == len(event_ids):
                return time.monotonic() - start
            if time.monotonic() - start > within:
                return None
            await asyncio.sleep(0.25)


@dataclass
class FaultStack:
    stack: LocalStack
    pools: dict[str, asyncpg.Pool] = field(default_factory=dict)
    mail: MailCounter | None = None

    @property
    def ports(self) -> Any:
        return self.stack.ports

    def dsn(self, service: str) -> str:
        assert self.stack.postgres is not None
        values = json.loads((self.stack.var / "secrets.json").read_text())
        return dsn_for(self.stack.postgres.admin_dsn, user=SERVICE_SCHEMAS[service],
                       password=values[f"{service.upper()}_DB_PASSWORD"], database="portal")

    async def open(self) -> None:
        for service in ("profile", "mfa", "notifier"):
            self.pools[service] = await db.create_pool(self.dsn(service), schema=service, min_size=0, max_size=6)
        self.mail = MailCounter(self.stack.mail_dir)

    async def close(self) -> None:
        for pool in self.pools.values():
            pool.terminate()

    # --- children -------------------------------------------------------------------------------------
    def child(self, name: str) -> Child:
        return next(c for c in reversed(self.stack.children) if c.name == name)

    def respawn_service(self, service: str) -> Child:
        """Start `service` again with the argv and environment the stack gave it."""
        old = self.child(f"{service} service")
        port = getattr(self.ports, service)
        env = {**self.stack.env, "DATABASE_URL": self.dsn(service), "HTTP_PORT": str(port)}
        new = spawn(old.name, list(old.process.args), log_path=old.log_path, env=env, cwd=REPO)  # type: ignore[arg-type]
        self.stack.children[self.stack.children.index(old)] = new
        return new

    def respawn_mail_sink(self) -> Child:
        old = self.child("mail sink")
        new = spawn(old.name, list(old.process.args), log_path=old.log_path)  # type: ignore[arg-type]
        self.stack.children[self.stack.children.index(old)] = new
        return new

    async def wait_ready(self, service: str, within: float = 60) -> float:
        url = f"http://127.0.0.1:{getattr(self.ports, service)}/health/ready"
        start = time.monotonic()
        while not await asyncio.to_thread(http_ok, url):
            if time.monotonic() - start > within:
                raise TimeoutError(f"{service} not ready within {within}s")
            await asyncio.sleep(0.2)
        return time.monotonic() - start

    async def wait_port(self, port: int, within: float = 20) -> None:
        start = time.monotonic()
        while not tcp_open(port):
            if time.monotonic() - start > within:
                raise TimeoutError(f"port {port} not open within {within}s")
            await asyncio.sleep(0.1)

    # --- events ---------------------------------------------------------------------------------------
    async def write(self, service: str, events: list[Event]) -> list[Envelope]:
        """Commit `events` to `service`'s outbox in one transaction (as the service itself would)."""
        async with self.pools[service].acquire() as conn, conn.transaction():
            return [await enqueue(conn, event, source=service) for event in events]

    async def write_stream(self, service: str, make: Callable[[int], Event], total: int, *, per_tx: int,
                           pause: float, out: list[str]) -> None:
        """Write `total` events in transactions of `per_tx`, `pause` seconds apart; ids appended to `out`."""
        for start in range(0, total, per_tx):
            written = await self.write(service, [make(n) for n in range(start, min(start + per_tx, total))])
            out.extend(e.id for e in written)
            await asyncio.sleep(pause)

    async def notifier_user_ids(self, count: int) -> list[str]:
        rows = await self.pools["notifier"].fetch("SELECT user_id FROM users ORDER BY user_id LIMIT $1", count)
        return [r["user_id"] for r in rows]

    async def unsent(self, service: str) -> int:
        return int(await self.pools[service].fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))

    # --- broker ---------------------------------------------------------------------------------------
    async def queue_depths(self, *names: str) -> dict[str, int]:
        assert self.stack.rabbitmq is not None
        connection = await aio_pika.connect(self.stack.rabbitmq.amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            depths = {}
            for name in names:
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = int(queue.declaration_result.message_count or 0)
            return depths

    async def publish_raw(self, messages: list[tuple[str, bytes, str | None]]) -> None:
        """Publish (routing key, body, message id) to portal.events with confirms, as a foreign producer."""
        assert self.stack.rabbitmq is not None
        connection = await aio_pika.connect(self.stack.rabbitmq.amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await broker.declare_exchange(channel)
            for key, body, message_id in messages:
                await exchange.publish(aio_pika.Message(body, message_id=message_id, content_type="application/json",
                                                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                                       routing_key=key)

    def metric(self, service: str, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample on the service's /metrics whose labels include `labels`."""
        url = f"http://127.0.0.1:{getattr(self.ports, service)}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


async def wait_until(check: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True
