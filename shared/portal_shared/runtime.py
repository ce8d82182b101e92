"""Resource lifecycles for a service app (aiohttp cleanup_ctx) and the process entry point."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import structlog
from aiohttp import web

from portal_shared import broker, db, inbox, tracing
from portal_shared.config import CommonSettings
from portal_shared.consumer import EventConsumer, Handler
from portal_shared.health import add_health_routes
from portal_shared.keys import AMQP_CONNECTION, DB_POOL
from portal_shared.migrate import run_migrations
from portal_shared.relay import OutboxRelay

log = structlog.get_logger("portal.runtime")
CleanupCtx = Callable[[web.Application], AsyncIterator[None]]
T = TypeVar("T")


async def _retry_until_up(what: str, connect: Callable[[], Awaitable[object]]) -> object:
    """Dependencies may start after us (compose, k8s): wait for them instead of crash-looping."""
    delay = 0.2
    while True:
        try:
            return await connect()
        except (OSError, asyncpg.PostgresError, aio_pika.exceptions.AMQPError, TimeoutError) as exc:
            log.warning("dependency_waiting", dependency=what, error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def database(settings: CommonSettings, *, schema: str, migrations: Sequence[Path], max_size: int = 10) -> CleanupCtx:
    """The pool (migrated), and before it the tracer provider: every service's first resource, so its
    first SQL statement is already traced and its provider is flushed last, after the pool closed."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        provider = tracing.configure_once(settings.service_name)
        app[tracing.TRACER] = tracing.tracer(settings.service_name)
        try:
            async with _traced_database(app, settings, schema=schema, migrations=migrations, max_size=max_size):
                yield
        finally:
            tracing.shutdown(provider)

    return ctx


@contextlib.asynccontextmanager
async def _traced_database(app: web.Application, settings: CommonSettings, *, schema: str, migrations: Sequence[Path],
                           max_size: int) -> AsyncIterator[None]:
    # Migrations and pool set-up are not a request's work: keep their statements out of the traces.
    with tracing.untraced():
        pool: asyncpg.Pool = await _retry_until_up(  # type: ignore[assignment]
            "postgres", lambda: db.create_pool(settings.database_url, schema=schema, max_size=max_size))
        async with pool.acquire() as conn:
            await run_migrations(conn, migrations, schema=schema)
    app[DB_POOL] = pool
    try:
        yield
    finally:
        await pool.close()


def message_broker(settings: CommonSettings) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        connection = await _retry_until_up(
            "rabbitmq", lambda: broker.connect(settings.amqp_url, name=settings.service_name))
        app[AMQP_CONNECTION] = connection  # type: ignore[assignment]
        yield
        await app[AMQP_CONNECTION].close()

    return ctx


def outbox_relay(settings: CommonSettings, *, schema: str) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        relay = OutboxRelay(app[DB_POOL], app[AMQP_CONNECTION], schema=schema, dsn=settings.database_url)
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


def event_consumer(settings: CommonSettings, handlers: dict[str, Handler], **options: object) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        consumer = EventConsumer(app[DB_POOL], app[AMQP_CONNECTION], service=settings.service_name,
                                 handlers=handlers, **options)  # type: ignore[arg-type]
        await consumer.start()
        pruning = asyncio.create_task(inbox.prune_forever(app[DB_POOL], tracing.tracer(settings.service_name)),
                                      name="inbox-prune")
        yield
        pruning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruning
        await consumer.stop()  # finish handlers in flight before the pool and connection close

    return ctx


def add_standard_health(app: web.Application) -> None:
    async def postgres() -> None:
        await db.check_database(app[DB_POOL])

    async def rabbitmq() -> None:
        connection = app[AMQP_CONNECTION]
        if connection.is_closed or not connection.connected.is_set():
            raise ConnectionError("broker connection is down")

    add_health_routes(app, {"postgres": postgres, "rabbitmq": rabbitmq})


def serve(app_factory: Callable[[], Awaitable[web.Application]], *, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully (cleanup_ctx teardown in reverse order)."""

    async def main() -> None:
        app = await app_factory()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("listening", host=host, port=port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        await runner.cleanup()

    run_on_service_loop(main())


def run_on_service_loop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the event loop the service processes use: uvloop's where it is installed (not on
    Windows), else asyncio's own. The benchmarks' baseline servers run on it too, like for like.

    uvloop is the same asyncio API with the loop and its transports in C: on the second sign-in step (a
    dozen database round trips and HTTP messages) it saves about 6% of profile's and mfa's CPU
    (bench/results/NOTES.md, 2026-12-04). The tests' in-process apps run on pytest's asyncio loop, so
    both loops are exercised."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
