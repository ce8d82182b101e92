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
from collections import deque
from datetime import UTC, datetime

from profile_service.models import User
from profile_service.repository.devices import Device

THRESHOLD = 10
BASE_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 3600


def counter_of(device: Device | None) -> bytes | None:
    """What an attempt counts on: the known device's token hash, else None (the account's untrusted counter)."""
    return device.token_hash if device is not None else None


def counter_locked(user: User | None, device: Device | None) -> bool:
    """Whether the counter an attempt counts on is locked, judged on the rows this request already read
    (the known device's, else the account's; no account, no lock)."""
    if device is not None:
        return is_locked(device.locked_until)
    return is_locked(user.locked_until if user is not None else None)


def lock_seconds(failures: int) -> int:
    """How long a counter stays locked after its `failures`-th consecutive failure (0: not locked)."""
    if failures < THRESHOLD:
        return 0
    return int(min(BASE_LOCK_SECONDS * 2 ** (failures - THRESHOLD), MAX_LOCK_SECONDS))


def is_locked(locked_until: datetime | None, now: datetime | None = None) -> bool:
    return locked_until is not None and locked_until > (now or datetime.now(UTC))


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
