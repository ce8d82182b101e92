"""The authenticator app factor: setup, enabling with a first code, sign-in checks, disabling.

RFC 6238 with its defaults (HMAC-SHA-1, 6 digits, 30 s steps). We accept the previous and next step
too (±1 step, up to ~30 s of clock drift either way, RFC 6238 §5.2), and refuse any code whose time
step is not later than the last accepted one, so a code works once even inside its window.
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import pyotp
import segno
import structlog
from portal_shared.events import TotpDisabled, TotpEnabled, TwoFactorDisabled, TwoFactorEnabled
from portal_shared.outbox import enqueue
from pyotp.utils import strings_equal

from mfa_service.checks import Check
from mfa_service.codes import CodeHasher
from mfa_service.confirm import Confirmer
from mfa_service.crypto import SecretBox
from mfa_service.errors import Conflict, field_error
from mfa_service.principal import Identity, require_recent_authentication
from mfa_service.profile_client import ProfileClient
from mfa_service.repository import totp as totp_repo
from mfa_service.repository import users as users_repo
from mfa_service.repository.factors import lock_user, two_factor_on
from mfa_service.state import issue_codes, void_codes

log = structlog.get_logger("mfa.totp")

ISSUER = "Client Portal"
SECRET_BYTES = 20  # 160 bits, the HMAC-SHA-1 key length RFC 4226 §4 recommends
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
PENDING_SECONDS = 15 * 60
_CODE = re.compile(r"[0-9]{6}")


def new_secret() -> str:
    """A base32 secret (32 characters, no padding) from the OS CSPRNG."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode()


def otpauth_uri(secret: str, account: str) -> str:
    """The Key URI Format authenticator apps read: otpauth://totp/Client%20Portal:{account}?..."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgclass="totp-qr")
    return buffer.getvalue().decode()


def clean_code(code: object) -> str | None:
    """Six digits (spaces ignored, as apps show `123 456`), else None."""
    if not isinstance(code, str):
        return None
    compact = code.replace(" ", "").strip()
    return compact if _CODE.fullmatch(compact) else None


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step within ±DRIFT_STEPS whose code equals `code` (latest first), else None."""
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = otp.timecode(time.time() if now is None else now)
    for step in range(current + DRIFT_STEPS, current - DRIFT_STEPS - 1, -1):
        if strings_equal(code, otp.generate_otp(step)):
            return step
    return None


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpService:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox, hasher: CodeHasher, confirmer: Confirmer,
                 profile: ProfileClient) -> None:
        self._pool = pool
        self._profile = profile
        self._box = box
        self._hasher = hasher
        self._confirmer = confirmer

    def _secret(self, row: totp_repo.TotpRow) -> str:
        return self._box.decrypt(row.sealed, associated_data=row.user_id.encode()).decode()

    async def setup(self, identity: Identity) -> TotpSetup:
        """Start (or restart) a pending setup: the secret is shown now and never again."""
        require_recent_authentication(identity, "add an authenticator app")
        secret = new_secret()
        sealed = self._box.encrypt(secret.encode(), associated_data=identity.user_id.encode())
        async with self._pool.acquire() as conn:
            email = await users_repo.email_of(conn, identity.user_id) or identity.email
            if not await totp_repo.save_pending(conn, identity.user_id, sealed, PENDING_SECONDS):
                raise Conflict("The authenticator app is already enabled.")
        uri = otpauth_uri(secret, email)
        return TotpSetup(secret, uri, qr_svg(uri))

    async def enable(self, identity: Identity, code: object) -> list[str] | None:
        """Enable the pending app with its first code; the new recovery codes when this turned 2FA on.

        Needs a recent sign-in again (not only at setup): a pending setup lives 15 minutes, longer than
        the re-authentication window. Ends the user's other sessions before the commit.
        """
        require_recent_authentication(identity, "add an authenticator app")
        cleaned = clean_code(code)
        if cleaned is None:
            raise field_error("code", "Enter the 6-digit code from your authenticator app.")
        user_id = identity.user_id
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            row = await totp_repo.get(conn, user_id, for_update=True)
            if row is not None and row.enabled_at is not None:
                raise Conflict("The authenticator app is already enabled.")
            if row is None or row.pending_until is None or row.pending_until <= datetime.now(row.pending_until.tzinfo):
                raise Conflict("Start the authenticator app setup again: it expired or was never started.")
            step = matching_step(self._secret(row), cleaned)
            if step is None:
                raise field_error("code", "That code is not valid. Check the time on your device and try again.")
            was_on = await two_factor_on(conn, user_id)
            if await totp_repo.enable(conn, user_id, step) is None:
                raise field_error("code", "That code was already used. Wait for the next one.")
            if was_on:
                await self._profile.end_other_sessions(user_id, identity.session_id)  # before the commit
                await enqueue(conn, TotpEnabled(user_id=user_id), source="mfa")
                return None
            await self._profile.raise_two_factor(user_id)  # before the commit: see ProfileClient
            await self._profile.end_other_sessions(user_id, identity.session_id)
            codes = await issue_codes(conn, self._hasher, user_id)
            await enqueue(conn, TwoFactorEnabled(user_id=user_id, method="totp"), source="mfa")
            return codes

    async def disable(self, identity: Identity, password: object) -> None:
        await self._confirmer.confirm(identity, password)
        user_id = identity.user_id
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            if not await totp_repo.delete_enabled(conn, user_id):
                raise Conflict("The authenticator app is not enabled.")
            await self._profile.end_other_sessions(user_id, identity.session_id)  # before the commit
            if await two_factor_on(conn, user_id):
                await enqueue(conn, TotpDisabled(user_id=user_id), source="mfa")
            else:
                await void_codes(conn, user_id)
                await enqueue(conn, TwoFactorDisabled(user_id=user_id, method="totp"), source="mfa")

    async def verify(self, user_id: str, code: object) -> Check:
        """A sign-in (or step-up) check; a code counts once, even under concurrent submissions."""
        cleaned = clean_code(code)
        async with self._pool.acquire() as conn:  # one connection for the read and the replay guard's write
            row = await totp_repo.get(conn, user_id)
            if cleaned is None or row is None or row.enabled_at is None:
                return Check.refused()
            step = matching_step(self._secret(row), cleaned)
            remaining = None
            if step is not None and step > row.last_used_step:
                remaining = await totp_repo.accept_step(conn, user_id, step)
        log.info("totp_checked", user_id=user_id, ok=remaining is not None)
        return Check.refused() if remaining is None else Check.passed(user_id, remaining)
