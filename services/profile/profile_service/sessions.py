"""Sessions: opaque ids in an HttpOnly cookie, stored hashed, with idle/absolute limits and CSRF tokens.

The cookie value is 32 random bytes (base64url); the database keeps only its SHA-256, so a leaked
table cannot be replayed. The readable `portal_csrf` cookie is an HMAC of the session id: the
double-submit pattern of the OWASP CSRF Prevention Cheat Sheet, bound to the session.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeGuard

import asyncpg
from aiohttp import web
from portal_shared.clock import iso
from portal_shared.ids import is_uuid

from profile_service.config import Settings
from profile_service.errors import NotFound
from profile_service.models import SECOND_FACTOR_REQUIRED, VOID, Session
from profile_service.repository import activity as activity_repo
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import users as users_repo
from profile_service.repository.devices import Device

SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
CSRF_HEADER = "X-CSRF-Token"
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
PENDING_TIMEOUT = timedelta(minutes=10)  # a sign-in waiting for its second factor
REAUTH_WINDOW = timedelta(minutes=10)
SECOND_FACTOR_ATTEMPTS = 5
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often (one write per minute)


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def hash_id(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


def csrf_token(key: str, raw: str) -> str:
    mac = hmac.new(key.encode(), b"portal-csrf:" + raw.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_matches(key: str, raw: str, header: str | None) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold any bytes (surrogate-escaped).
    return bool(header) and hmac.compare_digest(csrf_token(key, raw).encode(),
                                                (header or "").encode("utf-8", "surrogateescape"))


def set_cookies(response: web.StreamResponse, raw: str, settings: Settings) -> None:
    max_age = int(ABSOLUTE_TIMEOUT.total_seconds())
    response.set_cookie(SESSION_COOKIE, raw, httponly=True, samesite="Lax", path="/", max_age=max_age,
                        secure=settings.secure_cookies)
    response.set_cookie(CSRF_COOKIE, csrf_token(settings.service_auth_key, raw), httponly=False, samesite="Lax",
                        path="/", max_age=max_age, secure=settings.secure_cookies)


def clear_cookies(response: web.StreamResponse, settings: Settings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.del_cookie(name, path="/", secure=settings.secure_cookies, samesite="Lax")


def expired(session: Session, now: datetime) -> bool:
    return now >= session.expires_at or now - session.last_seen_at >= IDLE_TIMEOUT


def recently_authenticated(session: Session, now: datetime | None = None) -> bool:
    """Signed in or stepped up in the last 10 minutes (the contract's re-authentication window)."""
    now = now or datetime.now(UTC)
    latest = max(session.auth_at, session.reauth_at or session.auth_at)
    return now - latest <= REAUTH_WINDOW


def plausible(raw: str | None) -> TypeGuard[str]:
    """Could be one of our cookie values (base64url): a header may hold any bytes."""
    return raw is not None and 0 < len(raw) <= 128 and raw.isascii()


async def load(pool: asyncpg.Pool, raw: str | None) -> Session | None:
    """The live session named by a cookie value, or None. Expired rows are deleted on sight."""
    if not plausible(raw):
        return None
    id_hash = hash_id(raw)
    session = await sessions_repo.load(pool, id_hash)
    if session is None:
        return None
    now = datetime.now(UTC)
    if expired(session, now):
        await sessions_repo.delete(pool, id_hash)
        return None
    if session.state == SECOND_FACTOR_REQUIRED and now - session.created_at >= PENDING_TIMEOUT:
        session = dataclasses.replace(session, state=VOID)
    if now - session.last_seen_at >= TOUCH_EVERY:
        await sessions_repo.touch(pool, id_hash)
    return session


async def reserve_second_factor_attempt(pool: asyncpg.Pool, raw: str | None, *, device_hash: bytes | None
                                        ) -> tuple[Session, Device | None] | None:
    """Take one of the attempts of the pending sign-in named by a cookie value and load it, with the
    account's known device named by `device_hash`: None when no attempt was taken (`load` says why)."""
    if not plausible(raw):
        return None
    return await sessions_repo.reserve_second_factor_attempt(
        pool, hash_id(raw), limit=SECOND_FACTOR_ATTEMPTS, pending_seconds=int(PENDING_TIMEOUT.total_seconds()),
        idle_seconds=int(IDLE_TIMEOUT.total_seconds()), device_hash=device_hash)


class NewSession(NamedTuple):
    raw: str  # the cookie value
    public_id: str  # how lists and events name it


async def start(conn: asyncpg.Connection | asyncpg.Pool, *, user_id: str, state: str, user_agent: str,
                ip: str, method: str, audit: tuple[str, str] | None = None) -> NewSession:
    """A new session with a new id (never one the client chose: no session fixation), signed in (or
    started) by `method` (password, passkey, sso).

    `audit` (type, detail) is recorded with it, in the same statement."""
    raw = new_session_id()
    public_id = await sessions_repo.insert(conn, id_hash=hash_id(raw), user_id=user_id, state=state,
                                           lifetime_seconds=int(ABSOLUTE_TIMEOUT.total_seconds()),
                                           user_agent=user_agent, ip=ip, method=method, audit=audit)
    return NewSession(raw, public_id)


async def complete_sign_in(conn: asyncpg.Connection | asyncpg.Pool, session: Session, *, method: str, ip: str,
                           audit_detail: str) -> str:
    """The second factor passed: a new id, signed in (by `method`), counters cleared, the sign-in audited."""
    raw = new_session_id()
    await sessions_repo.complete_sign_in(conn, session.id_hash, new_hash=hash_id(raw), method=method, ip=ip,
                                         audit_detail=audit_detail)
    return raw


async def step_up(conn: asyncpg.Connection | asyncpg.Pool, session: Session) -> str:
    """Re-authenticated: a new id, reauth_at now."""
    raw = new_session_id()
    await sessions_repo.update(conn, session.id_hash, {
        "id_hash": hash_id(raw), "reauth_at": sessions_repo.NOW, "webauthn_challenge_id": None,
        "last_seen_at": sessions_repo.NOW})
    return raw


async def rotate(conn: asyncpg.Connection | asyncpg.Pool, session: Session) -> str:
    """A new id for the same session (its privileges changed: impersonation, password change)."""
    raw = new_session_id()
    await sessions_repo.update(conn, session.id_hash, {"id_hash": hash_id(raw), "last_seen_at": sessions_repo.NOW})
    return raw


async def end_all(conn: asyncpg.Connection, user_id: str) -> None:
    """Every session of the account ends, the admins' sessions viewing it included."""
    await sessions_repo.delete_all(conn, user_id)
    await sessions_repo.delete_viewing(conn, user_id)


async def end_others_for_factor_change(pool: asyncpg.Pool, user_id: str, keep_public_id: str | None) -> None:
    """A factor was added or removed (mfa asks): every session of the account but `keep_public_id` ends."""
    async with pool.acquire() as conn, conn.transaction():
        ended = await sessions_repo.delete_all_but_public(conn, user_id, keep_public_id)
        # The audit log belongs to an existing user (foreign key): an unknown id has no sessions to end.
        if ended or await users_repo.get(conn, user_id) is not None:
            await audit.record(conn, user_id, "sessions_revoked", detail="two-factor changed: other sessions ended")


async def logout(pool: asyncpg.Pool, session: Session, *, ip: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await sessions_repo.delete(conn, session.id_hash)
        await audit.record(conn, session.user.id, "signed_out", ip=ip)


async def list_sessions(pool: asyncpg.Pool, session: Session) -> list[dict[str, object]]:
    rows = await sessions_repo.list_live(pool, session.user.id, idle_seconds=int(IDLE_TIMEOUT.total_seconds()))
    return [{"id": str(r["public_id"]), "current": r["id_hash"] == session.id_hash,
             "created_at": iso(r["created_at"]), "last_seen_at": iso(r["last_seen_at"]),
             "user_agent": r["user_agent"], "ip": r["ip"], "method": r["method"]} for r in rows]


async def revoke(pool: asyncpg.Pool, session: Session, public_id: str, *, ip: str) -> bool:
    """End one of the user's sessions; True when it was the current one. Unknown ids are 404."""
    if not is_uuid(public_id):
        raise NotFound("No such session.")
    async with pool.acquire() as conn, conn.transaction():
        id_hash = await sessions_repo.delete_public(conn, session.user.id, public_id)
        if id_hash is None:
            raise NotFound("No such session.")
        await audit.record(conn, session.user.id, "session_revoked", ip=ip, detail=public_id)
        await activity_repo.record(conn, session.user.id, "session_revoked", ip=ip, user_agent=session.user_agent,
                                   detail={"session_id": public_id})
    return bool(id_hash == session.id_hash)


async def revoke_others(pool: asyncpg.Pool, session: Session, *, ip: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await sessions_repo.delete_all(conn, session.user.id, except_hash=session.id_hash)
        await audit.record(conn, session.user.id, "sessions_revoked", ip=ip, detail="every other session")
        await activity_repo.record(conn, session.user.id, "sessions_revoked", ip=ip, user_agent=session.user_agent,
                                   detail={})
