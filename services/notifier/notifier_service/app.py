"""Composition root of the notifier service: `create_app(settings)` wires resources, consumers and the courier."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from portal_shared import migrate, runtime
from portal_shared.keys import DB_POOL
from portal_shared.web import base_app

from notifier_service.config import SERVICE, Settings
from notifier_service.consumers import event_handlers
from notifier_service.dispatcher import Dispatcher

# The schema's migrations, in the order they apply (at start, in one transaction: portal_shared.migrate).
MIGRATIONS = migrate.listed(
    __file__,
    "0001_init.sql",
    "0002_correlation_id.sql",
    "0003_copies_and_scrubbing.sql",
    "0004_traceparent.sql",
)
log = structlog.get_logger("notifier.app")


def courier(settings: Settings) -> runtime.CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        dispatcher = Dispatcher(app[DB_POOL], settings)
        dispatcher.start()
        yield
        await dispatcher.stop()

    return ctx


def create_app(settings: Settings) -> web.Application:
    app = base_app()
    # The notifier publishes no events, so it runs no outbox relay. Its pool serves the consumer's
    # handlers and one connection per dispatcher worker.
    app.cleanup_ctx.extend([
        runtime.database(settings.common, schema=SERVICE, migrations=MIGRATIONS,
                         max_size=settings.dispatch.workers + 10),
        runtime.message_broker(settings.common),
        courier(settings),
        runtime.event_consumer(settings.common, event_handlers()),
    ])
    runtime.add_standard_health(app)
    return app
