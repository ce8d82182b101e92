"""The user's factors as a whole: the Security tab overview, the sign-in summary, the admin reset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from portal_shared.events import MfaResetByAdmin
from portal_shared.outbox import enqueue

from mfa_service.repository import credentials as credentials_repo
from mfa_service.repository import factors as factors_repo
from mfa_service.repository import recovery_codes as codes_repo
from mfa_service.repository import totp as totp_repo
from mfa_service.repository.credentials import Credential
from mfa_service.repository.factors import Summary, lock_user
from mfa_service.state import void_codes


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
        return await factors_repo.summary(self._pool, user_id)

    async def reset(self, user_id: str, admin_id: str) -> None:
        """An MSP admin's reset: every factor and code removed, one mfa.reset_by_admin event."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            await totp_repo.delete_all(conn, user_id)
            await credentials_repo.delete_all(conn, user_id)
            await void_codes(conn, user_id)
            await enqueue(conn, MfaResetByAdmin(user_id=user_id, admin_id=admin_id), source="mfa")
