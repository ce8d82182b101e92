"""What the handlers need at hand: the settings and the service objects, built once per app in a cleanup_ctx.

One frozen bag under one app key (keys.CONTEXT), as profile does: dependencies go one way, from the
composition root (app.py) down to the handlers, and nothing looks them up elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfa_service.config import Settings
from mfa_service.factors import FactorService
from mfa_service.recovery_codes import RecoveryCodeService
from mfa_service.totp import TotpService
from mfa_service.undo import UndoService
from mfa_service.webauthn_keys import WebAuthnService


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    factors: FactorService
    totp: TotpService
    webauthn: WebAuthnService
    recovery: RecoveryCodeService
    undo: UndoService
