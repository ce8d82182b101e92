"""One-time password tokens (reset and invitation) and spent "This wasn't me" links: SQL and token helpers.

A token is 32 random bytes (256 bits, base64url) in the link; only its SHA-256 is stored. Issuing a
new token voids the user's older unused ones of the same purpose; using one marks it used (once).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool
RESET = "reset"
INVITE = "invite"

_VOID_OLDER = """
UPDATE password_tokens SET voided_at = now()
WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL
"""
_INSERT = """
INSERT INTO password_tokens (token_hash, user_id, purpose, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at
"""
# Every open link of the account (reset and invitation): after a password or address change, a completed
# reset, or a "This wasn't me", a link mailed earlier must not work any more.
_VOID_ALL = """
UPDATE password_tokens SET voided_at = now()
WHERE user_id = $1 AND used_at IS NULL AND voided_at IS NULL
"""
_FIND_USABLE = """
SELECT user_id FROM password_tokens
WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL AND expires_at > now()
"""
# The WHERE makes use single even under concurrent confirms: only one UPDATE finds the row unused.
_USE = """
UPDATE password_tokens SET used_at = now()
WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND voided_at IS NULL AND expires_at > now()
RETURNING user_id
"""
_RECENT_COUNT = """
SELECT count(*) FROM password_tokens
WHERE user_id = $1 AND purpose = $2 AND created_at > now() - make_interval(secs => $3)
"""
_NOT_ME_SPENT = "SELECT 1 FROM not_me_uses WHERE jti = $1"
_SPEND_NOT_ME = "INSERT INTO not_me_uses (jti, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue(conn: asyncpg.Connection, user_id: str, purpose: str, *, lifetime_seconds: int) -> tuple[str, datetime]:
    """A new token for `user_id` (voiding older ones); returns (token, expires_at)."""
    token = new_token()
    await conn.execute(_VOID_OLDER, uuid.UUID(user_id), purpose)
    expires_at = await conn.fetchval(_INSERT, hash_token(token), uuid.UUID(user_id), purpose, lifetime_seconds)
    return token, expires_at


async def void_all(conn: Conn, user_id: str) -> None:
    """Void every unused reset and invitation token of the user."""
    await conn.execute(_VOID_ALL, uuid.UUID(user_id))


async def find_usable(conn: Conn, token: str, purpose: str) -> str | None:
    user_id = await conn.fetchval(_FIND_USABLE, hash_token(token), purpose)
    return str(user_id) if user_id else None


async def use(conn: asyncpg.Connection, token: str, purpose: str) -> str | None:
    user_id = await conn.fetchval(_USE, hash_token(token), purpose)
    return str(user_id) if user_id else None


async def recent_count(conn: Conn, user_id: str, purpose: str, *, window_seconds: int) -> int:
    return int(await conn.fetchval(_RECENT_COUNT, uuid.UUID(user_id), purpose, window_seconds))


async def not_me_spent(conn: Conn, jti: str) -> bool:
    return bool(await conn.fetchval(_NOT_ME_SPENT, jti))


async def spend_not_me(conn: asyncpg.Connection, jti: str, user_id: str) -> bool:
    """Record a not-me link as used; False when it had been used before."""
    return bool(await conn.fetchval(_SPEND_NOT_ME, jti, uuid.UUID(user_id)))
