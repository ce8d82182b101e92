"""Typed app and request keys of the mfa service (aiohttp AppKey; breaks handler <-> app import loops)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from mfa_service.config import Settings
    from mfa_service.factors import FactorService
    from mfa_service.identity import Identity
    from mfa_service.recovery_codes import RecoveryCodeService
    from mfa_service.totp import TotpService
    from mfa_service.undo import UndoService
    from mfa_service.webauthn_keys import WebAuthnService

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
FACTORS: web.AppKey[FactorService] = web.AppKey("factors")
TOTP: web.AppKey[TotpService] = web.AppKey("totp")
WEBAUTHN: web.AppKey[WebAuthnService] = web.AppKey("webauthn")
RECOVERY: web.AppKey[RecoveryCodeService] = web.AppKey("recovery")
UNDO: web.AppKey[UndoService] = web.AppKey("undo")
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")
