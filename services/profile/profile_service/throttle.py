"""Guessing limits: the per-account throttle (persisted in users) and an in-memory per-IP rate limit.

The account throttle counts consecutive failures of any factor (password, TOTP, key, recovery code),
whatever the flow, IP or process: after `THRESHOLD` failures the account refuses attempts for a
period that doubles with each further failure. Refusals look exactly like a wrong password.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from datetime import UTC, datetime

import asyncpg

THRESHOLD = 10
BASE_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 3600

# Failures during a lock are refused without counting, so the lock grows with real guesses only.
_RECORD_FAILURE = """
UPDATE users
SET failed_attempts = failed_attempts + 1,
    locked_until = CASE WHEN failed_attempts + 1 >= $2
        THEN now() + least(make_interval(secs => $3 * power(2, failed_attempts + 1 - $2)),
                           make_interval(secs => $4))
        ELSE locked_until END
WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now())
RETURNING failed_attempts, locked_until
"""
_RECORD_SUCCESS = """
UPDATE users SET failed_attempts = 0, locked_until = NULL
WHERE id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)
"""
_LOCKED = "SELECT locked_until > now() FROM users WHERE id = $1"


def lock_seconds(failures: int) -> int:
    """How long the account stays locked after its `failures`-th consecutive failure (0: not locked)."""
    if failures < THRESHOLD:
        return 0
    return int(min(BASE_LOCK_SECONDS * 2 ** (failures - THRESHOLD), MAX_LOCK_SECONDS))


def is_locked(locked_until: datetime | None, now: datetime | None = None) -> bool:
    return locked_until is not None and locked_until > (now or datetime.now(UTC))


async def account_locked(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> bool:
    return bool(await conn.fetchval(_LOCKED, uuid.UUID(user_id)))


async def record_failure(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> bool:
    """Count a failed attempt; True when the account is locked now."""
    row = await conn.fetchrow(_RECORD_FAILURE, uuid.UUID(user_id), THRESHOLD, BASE_LOCK_SECONDS,
                              MAX_LOCK_SECONDS)
    return row is None or (row["locked_until"] is not None and is_locked(row["locked_until"]))


async def record_success(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> None:
    await conn.execute(_RECORD_SUCCESS, uuid.UUID(user_id))


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
