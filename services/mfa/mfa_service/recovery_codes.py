"""Recovery codes as a factor: single-use spending at sign-in and regeneration with the password."""

from __future__ import annotations

import asyncpg
import structlog
from portal_shared.events import RecoveryCodesRegenerated, RecoveryCodeUsed
from portal_shared.outbox import enqueue

from mfa_service.checks import Check
from mfa_service.codes import CodeHasher
from mfa_service.confirm import Confirmer
from mfa_service.errors import Conflict
from mfa_service.principal import Identity
from mfa_service.repository import recovery_codes as codes_repo
from mfa_service.repository.factors import lock_user, two_factor_on
from mfa_service.state import issue_codes

log = structlog.get_logger("mfa.recovery_codes")


class RecoveryCodeService:
    def __init__(self, pool: asyncpg.Pool, hasher: CodeHasher, confirmer: Confirmer) -> None:
        self._pool = pool
        self._hasher = hasher
        self._confirmer = confirmer

    async def spend(self, user_id: str, code: str) -> tuple[Check, int]:
        """Use a code at sign-in: (the check, codes remaining either way). Atomic: one code, one success,
        however many race."""
        try:
            code_hash = self._hasher.digest(user_id, code)
        except ValueError:  # not a code's shape (codes.normalise), so it cannot match one: no lookup
            return Check.refused(), await codes_repo.remaining(self._pool, user_id)
        async with self._pool.acquire() as conn, conn.transaction():
            spent = await codes_repo.spend(conn, user_id, code_hash)
            remaining = await codes_repo.remaining(conn, user_id)
            if spent:
                await enqueue(conn, RecoveryCodeUsed(user_id=user_id, remaining=remaining), source="mfa")
        log.info("recovery_code_checked", user_id=user_id, ok=spent, remaining=remaining)
        return (Check.passed(user_id, remaining) if spent else Check.refused()), remaining

    async def regenerate(self, identity: Identity, password: object) -> list[str]:
        """Void every code and issue a new set; needs the password or a recent re-authentication."""
        await self._confirmer.confirm(identity, password)
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, identity.user_id)
            if not await two_factor_on(conn, identity.user_id):
                raise Conflict("Turn on two-factor authentication before generating recovery codes.")
            codes = await issue_codes(conn, self._hasher, identity.user_id)
            await enqueue(conn, RecoveryCodesRegenerated(user_id=identity.user_id, count=len(codes)), source="mfa")
        return codes
