"""SQL over all of a user's factors at once: the per-user lock, "is two-factor on?", the sign-in summary.

The contract: two-factor is on while the account has a TOTP app or at least one key. Every change that
may flip that state runs under a per-user advisory lock, so two concurrent changes cannot both believe
they turned it on (or off).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

LOCK_USER = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
TWO_FACTOR_ON = """
SELECT EXISTS (SELECT 1 FROM totp_secrets WHERE user_id = $1 AND enabled_at IS NOT NULL)
    OR EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = $1)
"""
# What a sign-in needs to know, read in one statement (one snapshot, one round trip): it runs on every
# password sign-in of an account whose two-factor latch is up.
SUMMARY = """
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


async def lock_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise this user's factor changes until the transaction ends."""
    if not conn.is_in_transaction():
        raise RuntimeError("lock_user() must run inside a transaction")
    await conn.execute(LOCK_USER, f"mfa-user:{user_id}")


async def two_factor_on(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> bool:
    return bool(await conn.fetchval(TWO_FACTOR_ON, user_id))


async def summary(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> Summary:
    row = await conn.fetchrow(SUMMARY, user_id)
    return Summary(row["totp"], row["keys"], row["codes_remaining"])
