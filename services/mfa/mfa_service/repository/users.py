"""The user projection (email, name) kept from profile's user events."""

from __future__ import annotations

from datetime import datetime

import asyncpg

# An older event (redelivered or overtaken) never overwrites a newer one.
UPSERT = """
INSERT INTO users (user_id, email, name, event_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, event_at = EXCLUDED.event_at
WHERE users.event_at <= EXCLUDED.event_at
"""
EMAIL = "SELECT email FROM users WHERE user_id = $1"


async def upsert(conn: asyncpg.Connection, user_id: str, email: str, name: str, event_at: datetime) -> None:
    await conn.execute(UPSERT, user_id, email, name, event_at)


async def email_of(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> str | None:
    return await conn.fetchval(EMAIL, user_id)
