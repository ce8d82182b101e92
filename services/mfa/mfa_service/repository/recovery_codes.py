"""SQL for recovery codes: stored as keyed hashes, spent once by a conditional UPDATE."""

from __future__ import annotations

from datetime import datetime

import asyncpg

INSERT = "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::bytea[])"
DELETE_ALL = "DELETE FROM recovery_codes WHERE user_id = $1"
# Row lock + re-check of used_at: of concurrent spends of one code exactly one returns a row.
SPEND = """
UPDATE recovery_codes SET used_at = now()
WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL
RETURNING 1
"""
REMAINING = "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"
DELETE_CREATED_UNTIL = "DELETE FROM recovery_codes WHERE user_id = $1 AND created_at <= $2"


async def replace(conn: asyncpg.Connection, user_id: str, hashes: list[bytes]) -> None:
    await conn.execute(DELETE_ALL, user_id)
    await conn.execute(INSERT, user_id, hashes)


async def delete_all(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute(DELETE_ALL, user_id)


async def spend(conn: asyncpg.Connection, user_id: str, code_hash: bytes) -> bool:
    return bool(await conn.fetchval(SPEND, user_id, code_hash))


async def remaining(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> int:
    return int(await conn.fetchval(REMAINING, user_id))


async def delete_created_until(conn: asyncpg.Connection, user_id: str, until: datetime) -> int:
    """Void the codes (used or not) created at or before `until`; how many were voided."""
    return int((await conn.execute(DELETE_CREATED_UNTIL, user_id, until)).split()[-1])
