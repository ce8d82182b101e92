"""Composition root of the mfa service: `create_app(settings)` wires resources, routes and tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from portal_shared import runtime
from portal_shared.keys import DB_POOL
from portal_shared.web import base_app

from mfa_service import handlers, internal_handlers, openapi
from mfa_service.ceremony import RelyingParty
from mfa_service.codes import CodeHasher
from mfa_service.config import SERVICE, Settings
from mfa_service.confirm import Confirmer
from mfa_service.crypto import SecretBox
from mfa_service.errors import domain_errors
from mfa_service.factors import FactorService
from mfa_service.identity import authenticate
from mfa_service.keys import FACTORS, HTTP_CLIENT, RECOVERY, SETTINGS, TOTP, UNDO, WEBAUTHN
from mfa_service.profile_client import ProfileClient
from mfa_service.recovery_codes import RecoveryCodeService
from mfa_service.totp import TotpService
from mfa_service.undo import UndoService
from mfa_service.users import HANDLERS
from mfa_service.webauthn_keys import WebAuthnService

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    app[HTTP_CLIENT] = aiohttp.ClientSession()
    yield
    await app[HTTP_CLIENT].close()


def _services(settings: Settings) -> runtime.CleanupCtx:
    # Secrets are parsed here, before anything listens: a bad key setting stops the service at start.
    box = SecretBox.from_setting(settings.encryption_keys)
    hasher = CodeHasher(settings.recovery_code_key)
    rp = RelyingParty.from_settings(settings.webauthn_rp_id, settings.common.portal_base_url)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = app[DB_POOL]
        profile = ProfileClient(app[HTTP_CLIENT], base_url=settings.profile_url,
                                service_auth_key=settings.service_auth_key)
        confirmer = Confirmer(profile)
        app[FACTORS] = FactorService(pool)
        app[TOTP] = TotpService(pool, box, hasher, confirmer, profile)
        app[WEBAUTHN] = WebAuthnService(pool, rp, hasher, profile)
        app[RECOVERY] = RecoveryCodeService(pool, hasher, confirmer)
        app[UNDO] = UndoService(pool)
        yield

    return ctx


def create_app(settings: Settings) -> web.Application:
    app = base_app(middlewares=[domain_errors, authenticate])
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([
        runtime.database(settings.common, schema=SERVICE, migrations=MIGRATIONS),
        runtime.message_broker(settings.common),
        runtime.outbox_relay(settings.common, schema=SERVICE),
        runtime.event_consumer(settings.common, HANDLERS),
        _http_client,
        _services(settings),
    ])
    runtime.add_standard_health(app)
    handlers.add_routes(app)
    internal_handlers.add_routes(app)
    app.router.add_get("/openapi.json", openapi.serve_document)
    return app
