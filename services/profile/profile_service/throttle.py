"""Guessing limits: the per-account throttle (persisted) and an in-memory per-IP rate limit.

The throttle counts consecutive failures of any factor (password, TOTP, key, recovery code), whatever
the flow, IP or process, on one of two kinds of counter (OWASP "device cookies", see devices.py):

- a known device of the account (a browser that completed a sign-in there): its own counter and lock;
- otherwise the account's "untrusted" counter (users.failed_attempts / locked_until), whose lock refuses
  only browsers that are not a known device, so a stranger's guesses never lock the owner out.

After `THRESHOLD` failures a counter refuses attempts for a period that doubles with each further
failure. Refusals look exactly like a wrong password. A success clears the counter it would have
counted on.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from datetime import UTC, datetime

import asyncpg
from portal_shared import actor

from profile_service.audit import MAX_DETAIL
from profile_service.devices_repo import NO_USER

THRESHOLD = 10
BASE_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 3600

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
_ACCOUNT_LOCKED = "SELECT locked_until > now() FROM users WHERE id = $1"
_DEVICE_LOCKED = "SELECT locked_until > now() FROM devices WHERE token_hash = $2 AND user_id = $1"


def lock_seconds(failures: int) -> int:
    """How long a counter stays locked after its `failures`-th consecutive failure (0: not locked)."""
    if failures < THRESHOLD:
        return 0
    return int(min(BASE_LOCK_SECONDS * 2 ** (failures - THRESHOLD), MAX_LOCK_SECONDS))


def is_locked(locked_until: datetime | None, now: datetime | None = None) -> bool:
    return locked_until is not None and locked_until > (now or datetime.now(UTC))


def _uid(user_id: str | None) -> uuid.UUID:
    return uuid.UUID(user_id) if user_id else NO_USER


async def locked(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, device: bytes | None = None) -> bool:
    """Whether the counter of this attempt is locked: the known device `device` of the account, else untrusted."""
    if device is None:
        return bool(await conn.fetchval(_ACCOUNT_LOCKED, uuid.UUID(user_id)))
    return bool(await conn.fetchval(_DEVICE_LOCKED, uuid.UUID(user_id), device))


async def account_locked(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> bool:
    """The untrusted counter's lock (what refuses browsers that are not a known device)."""
    return await locked(conn, user_id)


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


class IpRateLimiter:
    """A sliding-window limit per client address, kept in memory (each replica limits on its own)."""

    def __init__(self, limit: int, window_seconds: float = 60.0, max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window = window_seconds
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float | None = None) -> int:
        """Record a request; 0 when allowed, else the seconds to wait (for Retry-After)."""
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self._limit:
            return max(1, math.ceil(hits[0] + self._window - now))
        hits.append(now)
        return 0

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self._window]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            self._hits.clear()
