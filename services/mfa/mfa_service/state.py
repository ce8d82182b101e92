"""Two-factor state shared by every factor: issuing and voiding the recovery codes.

The contract: turning two-factor on creates 10 recovery codes, turning it off voids them. Callers hold
the user's lock (repository.factors.lock_user) while they decide which of the two applies.
"""

from __future__ import annotations

import asyncpg

from mfa_service.codes import CodeHasher, generate_codes
from mfa_service.repository import recovery_codes as codes_repo


async def issue_codes(conn: asyncpg.Connection, hasher: CodeHasher, user_id: str) -> list[str]:
    """Replace the user's codes with a fresh set; returns the plaintext codes, shown once and never stored."""
    codes = generate_codes()
    await codes_repo.replace(conn, user_id, [hasher.digest(user_id, code) for code in codes])
    return codes


async def void_codes(conn: asyncpg.Connection, user_id: str) -> None:
    await codes_repo.delete_all(conn, user_id)
