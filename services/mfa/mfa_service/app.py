"""Composition root of the mfa service: `create_app(settings)` wires resources, routes and tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from portal_shared import migrate, runtime
from portal_shared.errors import domain_errors
from portal_shared.keys import DB_POOL
from portal_shared.web import base_app

from mfa_service import handlers_internal, handlers_public
from mfa_service.ceremony import RelyingParty
from mfa_service.codes import CodeHasher
from mfa_service.config import SERVICE, Settings
from mfa_service.confirm import Confirmer
from mfa_service.consumers import HANDLERS
from mfa_service.context import Context
from mfa_service.crypto import SecretBox
from mfa_service.factors import FactorService
from mfa_service.identity import authenticate
from mfa_service.keys import CONTEXT
from mfa_service.profile_client import ProfileClient
from mfa_service.recovery_codes import RecoveryCodeService
from mfa_service.totp import TotpService
from mfa_service.undo import UndoService
from mfa_service.webauthn_keys import WebAuthnService

# The schema's migrations, in the order they apply (at start, in one transaction: portal_shared.migrate).
MIGRATIONS = migrate.listed(
    __file__,
    "0001_init.sql",
)


def _context(settings: Settings) -> runtime.CleanupCtx:
    # Secrets are parsed here, before anything listens: a bad key setting stops the service at start.
    box = SecretBox.from_setting(settings.encryption_keys)
    hasher = CodeHasher(settings.recovery_code_key)
    rp = RelyingParty.from_settings(settings.webauthn_rp_id, settings.common.portal_base_url)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = app[DB_POOL]
        async with aiohttp.ClientSession() as http:
            profile = ProfileClient(http, base_url=settings.profile_url, service_auth_key=settings.service_auth_key)
            confirmer = Confirmer(profile)
            app[CONTEXT] = Context(
                settings=settings,
                factors=FactorService(pool),
                totp=TotpService(pool, box, hasher, confirmer, profile),
                webauthn=WebAuthnService(pool, rp, hasher, profile),
                recovery=RecoveryCodeService(pool, hasher, confirmer),
                undo=UndoService(pool),
            )
            yield

    return ctx


def create_app(settings: Settings) -> web.Application:
    app = base_app(middlewares=[domain_errors, authenticate])
    app.cleanup_ctx.extend([
        runtime.database(settings.common, schema=SERVICE, migrations=MIGRATIONS),
        runtime.message_broker(settings.common),
        runtime.outbox_relay(settings.common, schema=SERVICE),
        runtime.event_consumer(settings.common, HANDLERS),
        _context(settings),
    ])
    runtime.add_standard_health(app)
    app.add_routes(handlers_public.routes)
    app.add_routes(handlers_internal.routes)
    return app
