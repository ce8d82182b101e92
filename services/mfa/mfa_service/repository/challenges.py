"""SQL for WebAuthn ceremony challenges: stored as SHA-256, expiring, consumed once."""

from __future__ import annotations

import uuid

import asyncpg

INSERT = """
INSERT INTO webauthn_challenges (id, challenge_hash, ceremony, user_id, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
"""
# DELETE ... RETURNING consumes atomically: of two concurrent uses only one gets the row. A challenge
# made for another ceremony or user is not consumed and does not match.
CONSUME = """
DELETE FROM webauthn_challenges
WHERE challenge_hash = $1 AND ceremony = $2 AND user_id IS NOT DISTINCT FROM $3
  AND ($4::uuid IS NULL OR id = $4)
RETURNING expires_at > now()
"""
PURGE_EXPIRED = "DELETE FROM webauthn_challenges WHERE expires_at < now() - interval '1 hour'"


async def insert(conn: asyncpg.Connection | asyncpg.Pool, challenge_hash: bytes, ceremony: str, user_id: str | None,
                 ttl_seconds: int) -> uuid.UUID:
    challenge_id = uuid.uuid4()
    await conn.execute(INSERT, challenge_id, challenge_hash, ceremony, user_id, float(ttl_seconds))
    return challenge_id


async def consume(conn: asyncpg.Connection | asyncpg.Pool, challenge_hash: bytes, ceremony: str,
                  user_id: str | None, challenge_id: uuid.UUID | None = None) -> bool:
    """True when an unexpired challenge matched and is now spent (an expired one is spent too)."""
    return bool(await conn.fetchval(CONSUME, challenge_hash, ceremony, user_id, challenge_id))


async def purge_expired(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    await conn.execute(PURGE_EXPIRED)
