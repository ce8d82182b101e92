"""Two-factor state shared by every factor: the per-user lock, "is it on?", issuing and voiding codes.

The contract: two-factor is on while the account has a TOTP app or at least one key; turning it on
creates 10 recovery codes, turning it off voids them. Every change that may flip that state runs under
a per-user advisory lock, so two concurrent changes cannot both believe they turned it on (or off).
"""

from __future__ import annotations

import asyncpg

from mfa_service.codes import CodeHasher, generate_codes
from mfa_service.repository import recovery_codes as codes_repo

LOCK_USER = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
TWO_FACTOR_ON = """
SELECT EXISTS (SELECT 1 FROM totp_secrets WHERE user_id = $1 AND enabled_at IS NOT NULL)
    OR EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = $1)
"""


async def lock_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise this user's factor changes until the transaction ends."""
    if not conn.is_in_transaction():
        raise RuntimeError("lock_user() must run inside a transaction")
    await conn.execute(LOCK_USER, f"mfa-user:{user_id}")


async def two_factor_on(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> bool:
    return bool(await conn.fetchval(TWO_FACTOR_ON, user_id))


async def issue_codes(conn: asyncpg.Connection, hasher: CodeHasher, user_id: str) -> list[str]:
    """Replace the user's codes with a fresh set; returns the plaintext codes, shown once and never stored."""
    codes = generate_codes()
    await codes_repo.replace(conn, user_id, [hasher.digest(user_id, code) for code in codes])
    return codes


async def void_codes(conn: asyncpg.Connection, user_id: str) -> None:
    await codes_repo.delete_all(conn, user_id)
