"""SQL for known devices (table `devices`): one row per (device cookie hash, account)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Device:
    """A browser known to one account: it completed a sign-in there. Its own failure counter and lock."""

    token_hash: bytes
    user_id: str
    created_at: datetime
    last_sign_in_at: datetime
    failed_attempts: int
    locked_until: datetime | None


# Stands in for the account when there is none (an unknown address): the same query runs and finds nothing.
NO_USER = uuid.UUID(int=0)

_DEVICE_FIELDS = ("token_hash", "user_id", "created_at", "last_sign_in_at", "failed_attempts", "locked_until")


def device_columns(alias: str, prefix: str = "") -> str:
    """The select list for a device row of table alias `alias`, each column named prefix+field (as
    users.user_columns is for users)."""
    return ", ".join(f"{alias}.{f} AS {prefix}{f}" for f in _DEVICE_FIELDS)


_FIND = f"SELECT {device_columns('d')} FROM devices d WHERE d.token_hash = $1 AND d.user_id = $2"  # noqa: S608
# A completed sign-in re-keys the browser (OWASP: a new device cookie at each successful sign-in), so a
# value planted in or copied from the browser before this sign-in stops naming it. Every account the old
# value knew moves to the new one; this account's row starts again with a clear counter, keeping the
# date it was first seen. The account keeps at most $4 devices (the least recently used go), so
# cookie-less clients that sign in often (scripts) cannot grow the table without bound.
# (`stale` skips the old row: two deletes of one row in one statement would leave `previous` unpredictable.)
_REMEMBER = """
WITH moved AS (
    UPDATE devices SET token_hash = $2
    WHERE $1::bytea IS NOT NULL AND token_hash = $1 AND user_id <> $3
), previous AS (
    DELETE FROM devices WHERE $1::bytea IS NOT NULL AND token_hash = $1 AND user_id = $3
    RETURNING created_at
), stale AS (
    DELETE FROM devices
    WHERE user_id = $3 AND token_hash IS DISTINCT FROM $1 AND token_hash IN (
        SELECT token_hash FROM devices WHERE user_id = $3 ORDER BY last_sign_in_at DESC OFFSET $4 - 1)
)
INSERT INTO devices (token_hash, user_id, created_at, last_sign_in_at)
SELECT $2, $3, coalesce((SELECT created_at FROM previous), now()), now()
RETURNING EXISTS (SELECT 1 FROM previous) AS known
"""


# A completed reset proves control of the mailbox: the account's known browsers start again unlocked.
_CLEAR_ACCOUNT = """
UPDATE devices SET failed_attempts = 0, locked_until = NULL
WHERE user_id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)
"""


def device_from_row(row: asyncpg.Record | None, prefix: str = "") -> Device | None:
    """The device of a row selected with device_columns (the same prefix); None for no row, or a row whose
    device columns are NULL (no match in an outer join)."""
    if row is None or row[prefix + "token_hash"] is None:
        return None
    return Device(token_hash=row[prefix + "token_hash"], user_id=str(row[prefix + "user_id"]),
                  created_at=row[prefix + "created_at"], last_sign_in_at=row[prefix + "last_sign_in_at"],
                  failed_attempts=row[prefix + "failed_attempts"], locked_until=row[prefix + "locked_until"])


async def find(conn: Conn, token_hash: bytes, user_id: str | None) -> Device | None:
    return device_from_row(await conn.fetchrow(_FIND, token_hash, uuid.UUID(user_id) if user_id else NO_USER))


# Sign-ins of one account completing at once each forget its devices beyond the cap; unserialized, they
# locked those rows in different orders (a deadlock: one sign-in answered 500) and each left the others'
# rows behind. A transaction-level lock on the account (only this statement takes it) makes them one at a
# time; the sign-ins of other accounts never wait for it.
# (Advisory locks are per database, which the services share: the key names what it locks.)
_SERIALIZE = "SELECT pg_advisory_xact_lock(hashtextextended('profile.devices:' || $1::text, 0))"


async def remember(conn: asyncpg.Connection, *, old_hash: bytes | None, new_hash: bytes, user_id: str,
                   keep: int) -> bool:
    """Re-key the browser from `old_hash` to `new_hash` and record its sign-in to `user_id` (in the caller's
    transaction, which holds the account's device lock until it ends).

    True when `old_hash` was already a known device of this account."""
    account = uuid.UUID(user_id)
    await conn.execute(_SERIALIZE, str(account))
    return bool(await conn.fetchval(_REMEMBER, old_hash, new_hash, account, keep))


async def clear_account(conn: Conn, user_id: str) -> None:
    """Clear the failure counter and lock of every known device of the account."""
    await conn.execute(_CLEAR_ACCOUNT, uuid.UUID(user_id))
