"""Composition root of the notifier service: `create_app(settings)` wires resources, consumers and the courier."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web
from portal_shared import runtime
from portal_shared.keys import DB_POOL
from portal_shared.migrate import run_migrations
from portal_shared.web import base_app

from notifier_service.config import SERVICE, Settings
from notifier_service.consumers import event_handlers
from notifier_service.dispatcher import Dispatcher
from notifier_service.keys import DISPATCHER

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = structlog.get_logger("notifier.app")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):  # as portal_shared.db does
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Returning a connection to the pool: asyncpg still rolls back an open transaction and drops
    listeners, but skips its RESET ALL/UNLISTEN/CLOSE ALL round trip. The notifier never changes session
    settings, LISTENs or holds cursors or advisory locks on pool connections (its LISTEN has its own
    connection), and that round trip cost one in six of a sent email's database calls."""


def database(settings: Settings, *, max_size: int) -> runtime.CleanupCtx:
    """Like portal_shared.runtime.database (same search_path, codecs, migrations), without the reset query."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        delay = 0.2
        while True:  # Postgres may start after us: wait instead of crash-looping
            try:
                pool = await asyncpg.create_pool(
                    settings.common.database_url, min_size=2, max_size=max_size, init=_init_connection,
                    reset=_keep_session, command_timeout=30,
                    server_settings={"search_path": SERVICE, "application_name": f"portal-{SERVICE}"})
                break
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("dependency_waiting", dependency="postgres", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        async with pool.acquire() as conn:
            await run_migrations(conn, MIGRATIONS, schema=SERVICE)
        app[DB_POOL] = pool
        yield
        await pool.close()

    return ctx


def courier(settings: Settings) -> runtime.CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        dispatcher = Dispatcher(app[DB_POOL], settings)
        app[DISPATCHER] = dispatcher
        dispatcher.start()
        yield
        await dispatcher.stop()

    return ctx


def create_app(settings: Settings) -> web.Application:
    app = base_app()
    # The notifier publishes no events, so it runs no outbox relay. Its pool serves the consumer's
    # handlers and one connection per dispatcher worker.
    app.cleanup_ctx.extend([
        database(settings, max_size=settings.dispatch.workers + 10),
        runtime.message_broker(settings.common),
        courier(settings),
        runtime.event_consumer(settings.common, event_handlers()),
    ])
    runtime.add_standard_health(app)
    return app
