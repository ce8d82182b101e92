"""Composition root of the mfa service: `create_app(settings)` wires resources, routes and tasks."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from portal_shared import runtime
from portal_shared.web import base_app

from mfa_service.config import SERVICE, Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: Settings) -> web.Application:
    app = base_app()
    app.cleanup_ctx.extend([
        runtime.database(settings.common, schema=SERVICE, migrations=MIGRATIONS),
        runtime.message_broker(settings.common),
        runtime.outbox_relay(settings.common, schema=SERVICE),
    ])
    runtime.add_standard_health(app)
    return app
