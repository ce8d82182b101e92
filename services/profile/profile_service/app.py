"""Composition root of the profile service: `create_app(settings)` wires resources, routes and tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web
from portal_shared import migrate, runtime, tracing
from portal_shared.keys import DB_POOL
from portal_shared.web import base_app

from profile_service import (
    errors,
    guard,
    handlers_admin,
    handlers_auth,
    handlers_internal,
    handlers_profile,
    handlers_sso,
    sessions,
)
from profile_service.config import SERVICE, Settings
from profile_service.consumers import HANDLERS
from profile_service.context import Context
from profile_service.keys import CONTEXT
from profile_service.mfa_client import MfaClient
from profile_service.oidc import OidcClient
from profile_service.openapi import serve_openapi
from profile_service.passwords import PasswordHasher
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import sso as sso_repo
from profile_service.sealing import secret_box
from profile_service.throttle import IpRateLimiter

# The schema's migrations, in the order they apply (at start, in one transaction: portal_shared.migrate).
MIGRATIONS = migrate.listed(
    __file__,
    "0001_init.sql",
    "0002_devices.sql",
    "0003_undo.sql",
    "0004_deactivation.sql",
    "0005_admin_console.sql",
    "0006_sso.sql",
    "0007_activity.sql",
    "0008_session_method.sql",
    "0009_second_factors.sql",
)
PRUNE_EVERY_SECONDS = 600
log = structlog.get_logger("profile.app")


def context(settings: Settings) -> runtime.CleanupCtx:
    """The service layer's context: hasher thread pool, mfa and identity-provider HTTP clients, rate limiter,
    secret box (after the pool)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hasher = PasswordHasher(settings.hash_concurrency)
        async with aiohttp.ClientSession() as http:
            mfa = MfaClient(http, base_url=settings.mfa_url, key=settings.service_auth_key)
            app[CONTEXT] = Context(pool=app[DB_POOL], settings=settings, hasher=hasher, mfa=mfa,
                                   ip_limiter=IpRateLimiter(settings.auth_rate_per_minute),
                                   box=secret_box(settings),
                                   oidc=OidcClient(http, timeout=settings.sso_timeout_seconds))
            yield
            await app[CONTEXT].drain()
        hasher.close()

    return ctx


async def prune_sessions(app: web.Application) -> AsyncIterator[None]:
    """Deletes expired sessions and SSO sign-ins now and then (reads already ignore them)."""

    tracer = app[tracing.TRACER]

    async def loop() -> None:
        while True:
            try:
                # Each run is a trace of its own (its DELETEs are the span's children), not part of whatever
                # context started the app, and not a stray root span per statement.
                with tracing.background(tracer, "prune sessions"):
                    await sessions_repo.prune(app[DB_POOL], idle_seconds=int(sessions.IDLE_TIMEOUT.total_seconds()))
                    await sso_repo.prune_logins(app[DB_POOL])
            except Exception as exc:  # a failed prune is retried next round; never kill the loop
                log.warning("session_prune_failed", error=type(exc).__name__)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    task = asyncio.create_task(loop(), name="session-prune")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    app = base_app(middlewares=[errors.domain_errors, guard.authenticate])
    app.cleanup_ctx.extend([
        runtime.database(settings.common, schema=SERVICE, migrations=MIGRATIONS),
        runtime.message_broker(settings.common),
        runtime.outbox_relay(settings.common, schema=SERVICE),
        context(settings),
        runtime.event_consumer(settings.common, HANDLERS),
        prune_sessions,
    ])
    runtime.add_standard_health(app)
    for module in (handlers_auth, handlers_sso, handlers_profile, handlers_admin, handlers_internal):
        app.router.add_routes(module.routes)
    app.router.add_get("/openapi.json", serve_openapi)
    return app
