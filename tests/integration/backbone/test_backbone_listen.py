"""The one LISTEN loop (portal_shared.listen) under the relay and the dispatcher: a NOTIFY rings the
doorbell, and a lost listening connection is replaced and listens again without a restart."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from portal_shared.doorbell import Doorbell
from portal_shared.listen import listen_forever

CHANNEL = "listen_test"


class RecordingDoorbell(Doorbell):
    """A doorbell that also reports each ring, so the test waits for the ring itself."""

    def __init__(self) -> None:
        super().__init__()
        self.rings: asyncio.Queue[str] = asyncio.Queue()

    def ring(self) -> None:
        self.rings.put_nowait("one")
        super().ring()

    def ring_all(self) -> None:
        self.rings.put_nowait("all")
        super().ring_all()


async def next_ring(doorbell: RecordingDoorbell) -> str:
    return await asyncio.wait_for(doorbell.rings.get(), 10)


async def test_notify_rings_and_a_killed_connection_is_replaced(stack_env: dict[str, str]) -> None:
    dsn = stack_env["NOTIFIER_DATABASE_URL"]
    doorbell = RecordingDoorbell()
    task = asyncio.create_task(listen_forever(dsn, CHANNEL, doorbell, name="test", probe_interval=0.2,
                                              probe_timeout=1, reconnect_delay=0.1))
    admin = await asyncpg.connect(stack_env["ADMIN_DATABASE_URL"])
    sender = await asyncpg.connect(dsn)
    try:
        assert await next_ring(doorbell) == "all", "the first connect wakes every worker"
        await sender.execute(f"NOTIFY {CHANNEL}")
        assert await next_ring(doorbell) == "one", "a NOTIFY rings once"

        # Kill the listening backend, as a failover or a dropped connection would.
        killed = await admin.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1",
            sender.get_server_pid())
        assert killed == 1
        assert await next_ring(doorbell) == "all", "the loop reconnects and wakes every worker again"
        await sender.execute(f"NOTIFY {CHANNEL}")
        assert await next_ring(doorbell) == "one", "the new connection listens"
        assert doorbell.rings.empty()
    finally:
        await sender.close()
        await admin.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class FreezableProxy:
    """A TCP proxy to Postgres that can stop forwarding while keeping both sockets open: a half-open
    connection as a dead peer or a silent network drop leaves it (no FIN, no RST)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._frozen: set[int] = set()  # connections (by number) whose traffic is swallowed
        self._count = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        self._count += 1
        number = self._count
        await asyncio.gather(self._pipe(number, reader, up_writer), self._pipe(number, up_reader, writer),
                             return_exceptions=True)

    def freeze_open_connections(self) -> None:
        self._frozen.update(range(1, self._count + 1))

    async def _pipe(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if number in self._frozen:
                continue  # swallowed: the other side never hears of it
            writer.write(data)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()


async def test_a_half_open_connection_is_noticed_and_replaced(stack_env: dict[str, str]) -> None:
    """Without a timeout on the probe, the loop would wait forever on a connection that answers nothing."""
    target = urlsplit(stack_env["NOTIFIER_DATABASE_URL"])
    proxy = FreezableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    dsn = urlunsplit(target._replace(netloc=f"{target.netloc.rsplit('@', 1)[0]}@127.0.0.1:{port}"))
    doorbell = RecordingDoorbell()
    task = asyncio.create_task(listen_forever(dsn, CHANNEL, doorbell, name="test", probe_interval=0.2,
                                              probe_timeout=1, reconnect_delay=0.1))
    sender = await asyncpg.connect(stack_env["NOTIFIER_DATABASE_URL"])
    try:
        assert await next_ring(doorbell) == "all"
        proxy.freeze_open_connections()  # the listening connection goes silent; the next one gets through
        await sender.execute(f"NOTIFY {CHANNEL}")  # lost in the silence: no ring for it
        assert await next_ring(doorbell) == "all", "the silent connection was given up and replaced"
        await sender.execute(f"NOTIFY {CHANNEL}")
        assert await next_ring(doorbell) == "one", "the new connection listens"
    finally:
        await sender.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxy.close()
