"""SQL for server-side sessions; a session row is loaded joined with its user and impersonated user."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from profile_service.models import Session
from profile_service.repository import devices as devices_repo
from profile_service.repository.audit import MAX_DETAIL
from profile_service.repository.devices import Device
from profile_service.repository.users import user_columns, user_from_row

Conn = asyncpg.Connection | asyncpg.Pool

_SESSION_FIELDS = ("id_hash", "public_id", "state", "impersonation_reason", "second_factor_failures",
                   "webauthn_challenge_id", "created_at", "last_seen_at", "expires_at", "auth_at", "reauth_at",
                   "user_agent", "ip", "method")
_LOAD = f"""
SELECT {", ".join("s." + f for f in _SESSION_FIELDS)}, {user_columns("u", "uc", "u_")},
       {user_columns("i", "ic", "i_")}
FROM sessions s
JOIN users u ON u.id = s.user_id LEFT JOIN clients uc ON uc.id = u.client_id
LEFT JOIN users i ON i.id = s.impersonated_user_id LEFT JOIN clients ic ON ic.id = i.client_id
WHERE s.id_hash = $1 AND u.active  -- a deactivated account has no session, even one missed by its ending
"""  # noqa: S608 (column names are constants)
_INSERT = """
INSERT INTO sessions (id_hash, public_id, user_id, state, expires_at, user_agent, ip, method)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7, $8)
"""
# The session and its audit entry in one statement: a sign-in's writes in one round trip, atomically.
_INSERT_AUDITED = f"""
WITH new_session AS ({_INSERT})
INSERT INTO audit_log (user_id, type, ip, detail) VALUES ($3, $9, $7, $10)
"""  # noqa: S608 (a constant statement)
# The second factor passed: the pending session becomes signed in under a new id (counters cleared, the
# challenge spent) and the sign-in is audited, in one statement and one round trip.
_COMPLETE_AUDITED = """
WITH completed AS (
    UPDATE sessions
    SET id_hash = $2, state = 'signed_in', second_factor_failures = 0, webauthn_challenge_id = NULL,
        auth_at = now(), last_seen_at = now(), method = $3
    WHERE id_hash = $1
    RETURNING user_id
)
INSERT INTO audit_log (user_id, type, ip, detail) SELECT user_id, 'signed_in', $4, $5 FROM completed
"""
_TOUCH = "UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1"
_DELETE = "DELETE FROM sessions WHERE id_hash = $1"
_DELETE_PUBLIC = "DELETE FROM sessions WHERE user_id = $1 AND public_id = $2 RETURNING id_hash"
_DELETE_ALL = "DELETE FROM sessions WHERE user_id = $1 AND id_hash IS DISTINCT FROM $2"
# Sessions of admins viewing this account (impersonation): they end with the account's own.
_DELETE_VIEWING = "DELETE FROM sessions WHERE impersonated_user_id = $1"
_LIST = """
SELECT public_id, id_hash, created_at, last_seen_at, user_agent, ip, method FROM sessions
WHERE user_id = $1 AND state = 'signed_in' AND expires_at > now()
  AND last_seen_at > now() - make_interval(secs => $2)
ORDER BY last_seen_at DESC
"""
# A second-factor attempt takes its slot before the code is checked, so concurrent guesses on one pending
# sign-in cannot all pass a read-then-check: at most `limit` codes are ever evaluated per pending sign-in.
# The same statement is the attempt's load of its pending sign-in (the auth middleware leaves it to this
# one: guard.py) and reads the browser's known device of the account ($3: its cookie's hash, or NULL),
# whose counter the attempt checks and counts on: one round trip for all three. No row: no attempt taken
# (no live pending sign-in by that id, or none left); the caller's generic load then says why. The live
# conditions are sessions.load's ($4: the pending timeout, $5: the idle one, the account active), and the
# device is read live, not as the first step saw it: a lock set since must refuse.
_RESERVE_ATTEMPT = f"""
WITH reserved AS (
    UPDATE sessions s SET second_factor_failures = s.second_factor_failures + 1
    FROM users u
    WHERE s.id_hash = $1 AND s.state = 'second_factor_required' AND s.second_factor_failures < $2
      AND s.created_at > now() - make_interval(secs => $4)
      AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $5)
      AND u.id = s.user_id AND u.active
      AND s.impersonated_user_id IS NULL  -- never set on a pending sign-in: the row needs no viewing columns
    RETURNING s.*
)
SELECT {", ".join("s." + f for f in _SESSION_FIELDS)}, {user_columns("u", "uc", "u_")},
       {devices_repo.device_columns("d", "d_")}
FROM reserved s
JOIN users u ON u.id = s.user_id LEFT JOIN clients uc ON uc.id = u.client_id
LEFT JOIN devices d ON d.token_hash = $3 AND d.user_id = s.user_id
"""  # noqa: S608 (column names are constants)
_RETURN_ATTEMPT = """
UPDATE sessions SET second_factor_failures = greatest(second_factor_failures - 1, 0)
WHERE id_hash = $1 AND state = 'second_factor_required'
"""
_VOID_IF_SPENT = "UPDATE sessions SET state = 'void' WHERE id_hash = $1 AND second_factor_failures >= $2"
_PRUNE = "DELETE FROM sessions WHERE expires_at < now() OR last_seen_at < now() - make_interval(secs => $1)"
_UPDATABLE = ("id_hash", "state", "impersonated_user_id", "impersonation_reason", "second_factor_failures",
              "webauthn_challenge_id", "auth_at", "reauth_at", "last_seen_at", "method")


def _session(row: asyncpg.Record | None, *, viewing: bool = True) -> Session | None:
    """The session of a row with its user's columns (prefix u_) and, when `viewing`, the impersonated
    user's (prefix i_; a pending sign-in never views anyone, so its statement has none)."""
    if row is None:
        return None
    user = user_from_row(row, "u_")
    assert user is not None  # the join is an inner join
    values = {f: row[f] for f in _SESSION_FIELDS}
    return Session(**{**values, "public_id": str(values["public_id"])}, user=user,
                   impersonated=user_from_row(row, "i_") if viewing else None)


async def load(conn: Conn, id_hash: bytes) -> Session | None:
    return _session(await conn.fetchrow(_LOAD, id_hash))


async def insert(conn: Conn, *, id_hash: bytes, user_id: str, state: str, lifetime_seconds: int,
                 user_agent: str, ip: str, method: str = "", audit: tuple[str, str] | None = None) -> str:
    """A new session row; with `audit` (type, detail), its audit-log entry in the same statement."""
    public_id = uuid.uuid4()
    values = (id_hash, public_id, uuid.UUID(user_id), state, lifetime_seconds, user_agent[:300], ip, method)
    if audit is None:
        await conn.execute(_INSERT, *values)
    else:
        await conn.execute(_INSERT_AUDITED, *values, audit[0], audit[1][:MAX_DETAIL])
    return str(public_id)


async def complete_sign_in(conn: Conn, id_hash: bytes, *, new_hash: bytes, method: str, ip: str,
                          audit_detail: str) -> None:
    await conn.execute(_COMPLETE_AUDITED, id_hash, new_hash, method, ip, audit_detail[:MAX_DETAIL])


class _Now:
    """The value NOW: the column becomes the database's now() (a sentinel no caller's data can equal)."""

    def __repr__(self) -> str:
        return "NOW"


NOW: Any = _Now()


async def update(conn: Conn, id_hash: bytes, changes: dict[str, Any]) -> None:
    """Set columns (names from a fixed list) on the session `id_hash`; the value NOW means now()."""
    names = [n for n in changes if n in _UPDATABLE]
    parts, values = [], []
    for name in names:
        if changes[name] is NOW:
            parts.append(f"{name} = now()")
        else:
            values.append(uuid.UUID(changes[name]) if name == "impersonated_user_id" and changes[name] else
                          changes[name])
            parts.append(f"{name} = ${len(values) + 1}")
    await conn.execute(f"UPDATE sessions SET {', '.join(parts)} WHERE id_hash = $1",  # noqa: S608
                       id_hash, *values)


async def touch(conn: Conn, id_hash: bytes) -> None:
    await conn.execute(_TOUCH, id_hash)


async def delete(conn: Conn, id_hash: bytes) -> None:
    await conn.execute(_DELETE, id_hash)


async def delete_public(conn: Conn, user_id: str, public_id: str) -> bytes | None:
    return await conn.fetchval(_DELETE_PUBLIC, uuid.UUID(user_id), uuid.UUID(public_id))


async def delete_all(conn: Conn, user_id: str, *, except_hash: bytes | None = None) -> None:
    await conn.execute(_DELETE_ALL, uuid.UUID(user_id), except_hash)


async def delete_viewing(conn: Conn, user_id: str) -> int:
    """End the sessions viewing `user_id` (impersonation); how many there were."""
    status = await conn.execute(_DELETE_VIEWING, uuid.UUID(user_id))
    return int(status.split()[-1])


async def list_live(conn: Conn, user_id: str, *, idle_seconds: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST, uuid.UUID(user_id), idle_seconds)


async def reserve_second_factor_attempt(conn: Conn, id_hash: bytes, *, limit: int, pending_seconds: int,
                                        idle_seconds: int, device_hash: bytes | None
                                        ) -> tuple[Session, Device | None] | None:
    """Take one of the pending sign-in's `limit` attempts: the pending session as the attempt left it, with
    the account's known device named by `device_hash` (None: no such device); None when no attempt was
    taken (no live pending sign-in `id_hash`, or its attempts are spent)."""
    row = await conn.fetchrow(_RESERVE_ATTEMPT, id_hash, limit, device_hash, pending_seconds, idle_seconds)
    session = _session(row, viewing=False)
    return None if session is None else (session, devices_repo.device_from_row(row, "d_"))


async def return_second_factor_attempt(conn: Conn, id_hash: bytes) -> None:
    """Give back a reserved attempt whose code could not be checked (mfa unavailable)."""
    await conn.execute(_RETURN_ATTEMPT, id_hash)


async def void_if_attempts_spent(conn: Conn, id_hash: bytes, *, limit: int) -> None:
    await conn.execute(_VOID_IF_SPENT, id_hash, limit)


async def prune(conn: Conn, *, idle_seconds: int) -> str:
    return str(await conn.execute(_PRUNE, idle_seconds))


_DELETE_ALL_BUT_PUBLIC = "DELETE FROM sessions WHERE user_id = $1 AND public_id IS DISTINCT FROM $2"


async def delete_all_but_public(conn: Conn, user_id: str, keep_public_id: str | None) -> int:
    """End every session of the user (pending sign-ins too) but the one named by its public id (None: all).

    By public id, not id hash: mfa knows a session only by the identity's `sid`, which survives a step-up.
    Returns how many sessions ended.
    """
    status = await conn.execute(_DELETE_ALL_BUT_PUBLIC, uuid.UUID(user_id),
                                uuid.UUID(keep_public_id) if keep_public_id is not None else None)
    return int(status.split()[-1])
