"""The user's factors as a whole: the Security tab overview, the sign-in summary, the admin reset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from portal_shared.events import MfaResetByAdmin
from portal_shared.outbox import enqueue

from mfa_service.repository import credentials as credentials_repo
from mfa_service.repository import recovery_codes as codes_repo
from mfa_service.repository import totp as totp_repo
from mfa_service.repository.credentials import Credential
from mfa_service.state import lock_user, void_codes

# What a sign-in needs to know, read in one statement (one snapshot, one round trip): it runs on every
# password sign-in.
_SUMMARY = """
SELECT EXISTS (SELECT 1 FROM totp_secrets WHERE user_id = $1 AND enabled_at IS NOT NULL) AS totp,
       EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = $1) AS keys,
       (SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL) AS codes_remaining
"""


@dataclass(frozen=True, slots=True)
class Summary:
    totp: bool
    keys: bool
    recovery_codes_remaining: int

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp or self.keys

    @property
    def second_factors(self) -> list[str]:
        """In the contract's order: totp, webauthn, recovery_code."""
        factors = []
        if self.totp:
            factors.append("totp")
        if self.keys:
            factors.append("webauthn")
        if self.two_factor_enabled and self.recovery_codes_remaining > 0:
            factors.append("recovery_code")
        return factors


@dataclass(frozen=True, slots=True)
class Overview:
    totp_enabled_at: datetime | None
    keys: list[Credential]
    recovery_codes_remaining: int

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None or bool(self.keys)


class FactorService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def overview(self, user_id: str) -> Overview:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            totp = await totp_repo.get(conn, user_id)
            keys = await credentials_repo.list_for_user(conn, user_id)
            remaining = await codes_repo.remaining(conn, user_id)
        return Overview(totp.enabled_at if totp else None, keys, remaining)

    async def summary(self, user_id: str) -> Summary:
        row = await self._pool.fetchrow(_SUMMARY, user_id)
        return Summary(row["totp"], row["keys"], row["codes_remaining"])

    async def reset(self, user_id: str, admin_id: str) -> None:
        """An MSP admin's reset: every factor and code removed, one mfa.reset_by_admin event."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            await totp_repo.delete_all(conn, user_id)
            await credentials_repo.delete_all(conn, user_id)
            await void_codes(conn, user_id)
            await enqueue(conn, MfaResetByAdmin(user_id=user_id, admin_id=admin_id), source="mfa")
