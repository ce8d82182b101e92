"""SQL for the totp_secrets table (pending setups and enabled authenticator apps)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mfa_service.crypto import Sealed


@dataclass(frozen=True, slots=True)
class TotpRow:
    user_id: str
    sealed: Sealed
    enabled_at: datetime | None
    pending_until: datetime | None
    last_used_step: int


SELECT = """
SELECT user_id, key_id, secret, enabled_at, pending_until, last_used_step FROM totp_secrets WHERE user_id = $1
"""
SELECT_FOR_UPDATE = SELECT.rstrip() + " FOR UPDATE"
# A new setup replaces a pending one, never an enabled one.
SAVE_PENDING = """
INSERT INTO totp_secrets (user_id, key_id, secret, pending_until) VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (user_id) DO UPDATE
SET key_id = EXCLUDED.key_id, secret = EXCLUDED.secret, pending_until = EXCLUDED.pending_until,
    last_used_step = 0, created_at = now()
WHERE totp_secrets.enabled_at IS NULL
RETURNING 1
"""
ENABLE = """
UPDATE totp_secrets SET enabled_at = now(), pending_until = NULL, last_used_step = $2
WHERE user_id = $1 AND enabled_at IS NULL AND pending_until > now() AND last_used_step < $2
RETURNING enabled_at
"""
# The replay guard (RFC 6238 §5.2): accept a step only if it is later than the last accepted one. The
# conditional UPDATE is atomic, so of concurrent submissions of one code exactly one matches a row. It
# also answers the user's unused recovery codes, which sign-in reports, in the same round trip.
ACCEPT_STEP = """
UPDATE totp_secrets SET last_used_step = $2
WHERE user_id = $1 AND enabled_at IS NOT NULL AND last_used_step < $2
RETURNING (SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)
"""
DELETE_ENABLED = "DELETE FROM totp_secrets WHERE user_id = $1 AND enabled_at IS NOT NULL RETURNING 1"
DELETE_ALL = "DELETE FROM totp_secrets WHERE user_id = $1"
# The enabled app only if it was enabled no later than $2: an undo must not remove a later re-enrolment.
DELETE_ENABLED_UNTIL = """
DELETE FROM totp_secrets WHERE user_id = $1 AND enabled_at IS NOT NULL AND enabled_at <= $2 RETURNING 1
"""


def _row(record: asyncpg.Record | None) -> TotpRow | None:
    if record is None:
        return None
    return TotpRow(record["user_id"], Sealed(record["key_id"], bytes(record["secret"])), record["enabled_at"],
                   record["pending_until"], record["last_used_step"])


async def get(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, *, for_update: bool = False) -> TotpRow | None:
    return _row(await conn.fetchrow(SELECT_FOR_UPDATE if for_update else SELECT, user_id))


async def save_pending(conn: asyncpg.Connection, user_id: str, sealed: Sealed, ttl_seconds: int) -> bool:
    return bool(await conn.fetchval(SAVE_PENDING, user_id, sealed.key_id, sealed.blob, float(ttl_seconds)))


async def enable(conn: asyncpg.Connection, user_id: str, step: int) -> datetime | None:
    return await conn.fetchval(ENABLE, user_id, step)


async def accept_step(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, step: int) -> int | None:
    """None when the step is refused (replayed, or no enabled app); else the user's unused recovery codes."""
    remaining = await conn.fetchval(ACCEPT_STEP, user_id, step)
    return None if remaining is None else int(remaining)


async def delete_enabled(conn: asyncpg.Connection, user_id: str) -> bool:
    return bool(await conn.fetchval(DELETE_ENABLED, user_id))


async def delete_all(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute(DELETE_ALL, user_id)


async def delete_enabled_until(conn: asyncpg.Connection, user_id: str, until: datetime) -> bool:
    """Remove the enabled app if it was enabled at or before `until`; True when one was removed."""
    return bool(await conn.fetchval(DELETE_ENABLED_UNTIL, user_id, until))
