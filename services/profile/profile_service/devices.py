"""Device cookies (OWASP "Slow brute-force / device cookies"): a browser that completed a sign-in to an
account is a known device of that account, with its own failure counter and lock.

Failures from browsers that are not a known device of the account count on the account's "untrusted"
counter (users.failed_attempts / locked_until), whose lock refuses only such browsers; so a stranger who
knows an address can lock strangers out, never the owner's browsers. The cookie value is 32 random bytes
(base64url), one per browser whatever the accounts it signs in to; the database keeps its SHA-256 only.
It is scoped to /api/auth, where sign-in and re-authentication happen, and re-keyed at every completed
sign-in (a value planted in a browser, or copied from it, stops naming it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

import asyncpg
from aiohttp import web

from profile_service.config import Settings
from profile_service.repository import devices as devices_repo
from profile_service.repository.devices import Device

__all__ = ["DEVICE_COOKIE", "Device", "cookie", "find", "is_known", "remember", "set_cookie", "token_hash"]

DEVICE_COOKIE = "portal_device"
DEVICE_PATH = "/api/auth"
LIFETIME = timedelta(days=365)
MAX_DEVICES_PER_ACCOUNT = 50  # the least recently used beyond this are forgotten (they become untrusted)
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, no padding


def token_hash(raw: str | None) -> bytes | None:
    """The stored form of a cookie value; None when absent or not one we could have issued."""
    if not raw or not _WELL_FORMED.fullmatch(raw):
        return None
    return hashlib.sha256(raw.encode()).digest()


def cookie(request: web.Request) -> str | None:
    return request.cookies.get(DEVICE_COOKIE)


def set_cookie(response: web.StreamResponse, raw: str, settings: Settings) -> None:
    response.set_cookie(DEVICE_COOKIE, raw, httponly=True, samesite="Lax", path=DEVICE_PATH,
                        max_age=int(LIFETIME.total_seconds()), secure=settings.secure_cookies)


async def find(conn: asyncpg.Connection | asyncpg.Pool, raw: str | None, user_id: str | None) -> Device | None:
    """The known device of `user_id` that this cookie names, or None (no cookie, forged, or another account's).

    With a cookie the lookup runs even when there is no account (`user_id` None), so a sign-in to an
    unknown address does the same database work as one to an existing account."""
    hashed = token_hash(raw)
    if hashed is None:
        return None
    return await devices_repo.find(conn, hashed, user_id)


async def is_known(conn: asyncpg.Connection | asyncpg.Pool, raw: str | None, user_id: str) -> bool:
    """Whether this browser already completed a sign-in to the account (a "new device" sign-in if not)."""
    return await find(conn, raw, user_id) is not None


async def remember(conn: asyncpg.Connection, raw: str | None, user_id: str) -> tuple[str, bool]:
    """A sign-in to `user_id` completed in this browser: its new cookie value, and whether it was known.

    The account's row for this browser starts again with no failures (a success clears the device's counter).
    """
    new_raw = secrets.token_urlsafe(32)
    known = await devices_repo.remember(conn, old_hash=token_hash(raw), new_hash=token_hash(new_raw) or b"",
                                        user_id=user_id, keep=MAX_DEVICES_PER_ACCOUNT)
    return new_raw, known
