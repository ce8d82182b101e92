"""SQL of the per-account throttle's counters (the policy and its constants: throttle.py)."""

from __future__ import annotations

import uuid

import asyncpg
from portal_shared import actor

from profile_service.repository.audit import MAX_DETAIL
from profile_service.repository.devices import NO_USER
from profile_service.throttle import BASE_LOCK_SECONDS, MAX_LOCK_SECONDS, THRESHOLD

_LOCK_AFTER = """CASE WHEN failed_attempts + 1 >= $3
        THEN now() + least(make_interval(secs => $4 * power(2, failed_attempts + 1 - $3)),
                           make_interval(secs => $5))
        ELSE locked_until END"""
# One statement records a failure: the counter (the device's when $2 names a known device, else the
# account's untrusted one) and its audit entries. An unknown address runs the same statement with an id
# that matches nothing, so a wrong password costs the same round trip whether or not the account exists.
# The write commits without waiting for the WAL flush (synchronous_commit off for this statement's
# transaction): the flush is most of a write's cost, and an unknown address writes nothing, so waiting
# for it would tell existing accounts apart by ~1 ms. At worst a database crash forgets the last fraction
# of a second of failures (counts and their audit rows), which the throttle can afford; set_config is
# evaluated on the account's row, so exactly when there is something to write.
# Failures during a lock are refused without counting, so the lock grows with real guesses only.
# $6 audit type, $7 ip, $8 detail when counted, $9 detail when refused (locked), $10 type of a new lock,
# $11 user agent and $12 the factor, for the owner's activity feed (a `sign_in_failed` item; $12 NULL
# for failures outside sign-in, such as a wrong current password when changing it).
_RECORD_FAILURE = f"""
WITH device AS (
    UPDATE devices SET failed_attempts = failed_attempts + 1, locked_until = {_LOCK_AFTER}
    WHERE $2::bytea IS NOT NULL AND token_hash = $2 AND user_id = $1
      AND (locked_until IS NULL OR locked_until <= now())
    RETURNING locked_until
), account AS (
    UPDATE users SET failed_attempts = failed_attempts + 1, locked_until = {_LOCK_AFTER}
    WHERE $2::bytea IS NULL AND id = $1 AND (locked_until IS NULL OR locked_until <= now())
    RETURNING locked_until
), counted AS (
    SELECT locked_until FROM device UNION ALL SELECT locked_until FROM account
), target AS (
    SELECT id FROM users WHERE id = $1 AND set_config('synchronous_commit', 'off', true) IS NOT NULL
), activity_item AS (
    INSERT INTO activity (user_id, type, ip, user_agent, detail)
    SELECT t.id, 'sign_in_failed', $7::text, $11::text, jsonb_build_object('factor', $12::text)
    FROM target t WHERE $12::text IS NOT NULL
)
INSERT INTO audit_log (user_id, type, ip, detail)
SELECT t.id, $6::text, $7::text, CASE WHEN EXISTS (SELECT 1 FROM counted) THEN $8::text ELSE $9::text END
FROM target t
UNION ALL
SELECT t.id, $10::text, $7::text, 'too many failed attempts' FROM target t JOIN counted c ON c.locked_until > now()
"""  # noqa: S608 (the interpolated text is a constant)
_CLEAR_ACCOUNT = """
UPDATE users SET failed_attempts = 0, locked_until = NULL
WHERE id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)
"""
_CLEAR_DEVICE = """
UPDATE devices SET failed_attempts = 0, locked_until = NULL
WHERE token_hash = $2 AND user_id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)
"""


def _uid(user_id: str | None) -> uuid.UUID:
    return uuid.UUID(user_id) if user_id else NO_USER


async def record_failure(conn: asyncpg.Connection | asyncpg.Pool, user_id: str | None, device: bytes | None = None,
                         *, type_: str, ip: str, detail: str, refused_detail: str,
                         sign_in_factor: str | None = None) -> None:
    """Count a failure and audit it, in one statement (`detail` when counted, `refused_detail` during a lock).

    `device`: the token hash of a known device of the account, else None (the untrusted counter). With no
    account (`user_id` None) the same statement runs and changes nothing. `sign_in_factor` (password, totp,
    …) when the failure is a sign-in attempt: it shows in the owner's activity, with the request's browser."""
    who = actor.current()
    await conn.execute(_RECORD_FAILURE, _uid(user_id), device, THRESHOLD, BASE_LOCK_SECONDS, MAX_LOCK_SECONDS,
                       type_, ip, detail[:MAX_DETAIL], refused_detail[:MAX_DETAIL],
                       "account_throttled" if device is None else "device_throttled",
                       who.user_agent if who else "", sign_in_factor)


async def record_success(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, device: bytes | None = None) -> None:
    """Clear the counter the attempt would have counted on (the device's, else the untrusted one)."""
    if device is None:
        await conn.execute(_CLEAR_ACCOUNT, uuid.UUID(user_id))
    else:
        await conn.execute(_CLEAR_DEVICE, uuid.UUID(user_id), device)
