"""Signing in: the password step, the second-factor steps (checked by mfa) and passkey sign-in.

Every path answers a wrong email, a wrong password and a throttled account alike (same status, body
and, by verifying a dummy hash, the same time). The account throttle counts failures of every factor
and is cleared only by a complete sign-in, so a known password does not buy unlimited code guesses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from profile_service import audit, sessions, sessions_repo, throttle, users_repo
from profile_service.context import Context
from profile_service.errors import BadCredentials, Conflict, NotSignedIn, SecondFactorFailed, SignInExpired
from profile_service.models import SECOND_FACTOR_REQUIRED, SIGNED_IN, VOID, Session, User

log = structlog.get_logger("profile.signin")
MAX_PASSWORD_INPUT = 1024  # longer input is refused as wrong without hashing megabytes

SecondFactorCheck = Callable[[], Awaitable[tuple[bool, int | None]]]


@dataclass(frozen=True, slots=True)
class SignInResult:
    raw_session_id: str
    state: str
    second_factors: list[str] | None = None
    recovery_codes_remaining: int | None = None
    with_second_factor: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state}
        if self.second_factors is not None:
            body["second_factors"] = self.second_factors
        if self.with_second_factor:
            body["recovery_codes_remaining"] = self.recovery_codes_remaining
        return body


async def check_password(ctx: Context, user: User | None, password: str, *, ip: str, flow: str) -> bool:
    """Verify a password against the account, counting failures; a locked account always fails.

    With no account (or a locked one) a dummy hash is verified, so every answer takes one verification.
    """
    locked = user is not None and throttle.is_locked(user.locked_until)
    usable = user is not None and not locked and len(password) <= MAX_PASSWORD_INPUT
    ok = await ctx.hasher.verify(user.password_hash if usable and user else None,
                                 password[:MAX_PASSWORD_INPUT])
    if user is None:
        return False
    if not ok:
        async with ctx.pool.acquire() as conn, conn.transaction():
            now_locked = await throttle.record_failure(conn, user.id)
            detail = f"{flow}: wrong password" if not locked else f"{flow}: refused, account throttled"
            await audit.record(conn, user.id, "password_failed", ip=ip, detail=detail)
            if now_locked and not locked:
                await audit.record(conn, user.id, "account_throttled", ip=ip, detail="too many failed attempts")
        return False
    if user.password_hash and ctx.hasher.needs_rehash(user.password_hash):
        await users_repo.set_password_hash(ctx.pool, user.id, await ctx.hasher.hash(password))
    return True


async def login(ctx: Context, *, email: str, password: str, previous: Session | None, user_agent: str,
                ip: str) -> SignInResult:
    user = await users_repo.get_by_email(ctx.pool, email) if email else None
    if not await check_password(ctx, user, password, ip=ip, flow="sign-in"):
        raise BadCredentials()
    assert user is not None
    # The two-factor flag is raised by mfa before it commits turning two-factor on, so while it is down
    # mfa has no factor for this user and need not be asked; while it is up, mfa says which factors.
    factors = await ctx.mfa.factors(user.id) if user.two_factor_enabled else None
    state = SECOND_FACTOR_REQUIRED if factors is not None and factors.two_factor_enabled else SIGNED_IN
    entry = ("signed_in", "password") if state == SIGNED_IN else ("password_accepted", "second factor required")
    clear_throttle = state == SIGNED_IN and (user.failed_attempts > 0 or user.locked_until is not None)
    if previous is None and not clear_throttle:  # the usual case: one statement, one round trip
        raw = await sessions.start(ctx.pool, user_id=user.id, state=state, user_agent=user_agent, ip=ip, audit=entry)
    else:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if previous is not None:
                await sessions_repo.delete(conn, previous.id_hash)
            if clear_throttle:
                await throttle.record_success(conn, user.id)
            raw = await sessions.start(conn, user_id=user.id, state=state, user_agent=user_agent, ip=ip, audit=entry)
    if state == SIGNED_IN:
        return SignInResult(raw, SIGNED_IN)
    assert factors is not None
    return SignInResult(raw, SECOND_FACTOR_REQUIRED, second_factors=factors.second_factors)


def pending(session: Session | None) -> Session:
    """The pending sign-in of this request, or the 401 that says why there is none."""
    if session is None:
        raise NotSignedIn("Sign in with your password first.")
    if session.state == VOID:
        raise SignInExpired()
    if session.state == SIGNED_IN:
        raise Conflict("You are already signed in.")
    return session


async def second_factor(ctx: Context, session: Session | None, *, method: str, check: SecondFactorCheck,
                        ip: str) -> SignInResult:
    """Run one second-factor attempt for a pending sign-in; on success the session gets a new id."""
    session = pending(session)
    user = session.user
    limit = sessions.SECOND_FACTOR_ATTEMPTS
    # The attempt is counted before the code is checked (atomically), so parallel guesses on one pending
    # sign-in get at most `limit` evaluations; the rest find no attempt left.
    if not await sessions_repo.reserve_second_factor_attempt(ctx.pool, session.id_hash, limit=limit):
        raise SignInExpired()
    locked = await throttle.account_locked(ctx.pool, user.id)
    try:
        ok, remaining = (False, None) if locked else await check()
    except Exception:
        await sessions_repo.return_second_factor_attempt(ctx.pool, session.id_hash)
        raise
    if not ok:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await throttle.record_failure(conn, user.id)
            await sessions_repo.void_if_attempts_spent(conn, session.id_hash, limit=limit)
            await audit.record(conn, user.id, "second_factor_failed", ip=ip,
                               detail=method + (" (account throttled)" if locked else ""))
        raise SecondFactorFailed()
    if remaining is None:
        remaining = (await ctx.mfa.factors(user.id)).recovery_codes_remaining
    async with ctx.pool.acquire() as conn, conn.transaction():
        raw = await sessions.complete_sign_in(conn, session)
        await throttle.record_success(conn, user.id)
        await audit.record(conn, user.id, "signed_in", ip=ip, detail=f"password and {method}")
    return SignInResult(raw, SIGNED_IN, recovery_codes_remaining=remaining, with_second_factor=True)


async def webauthn_options(ctx: Context, session: Session | None) -> dict[str, Any]:
    session = pending(session)
    challenge = await ctx.mfa.webauthn_options(session.user.id)
    await sessions_repo.update(ctx.pool, session.id_hash, {"webauthn_challenge_id": challenge.challenge_id})
    return challenge.options


async def webauthn_check(ctx: Context, session: Session | None, credential: Any) -> SecondFactorCheck:
    session = pending(session)

    async def check() -> tuple[bool, int | None]:
        if not session.webauthn_challenge_id or not isinstance(credential, dict):
            return False, None
        proved = await ctx.mfa.verify_webauthn(session.webauthn_challenge_id, session.user.id, credential)
        return proved == session.user.id, None

    return check


async def passkey(ctx: Context, *, challenge_id: str | None, credential: Any, previous: Session | None,
                  user_agent: str, ip: str) -> SignInResult:
    """Sign in with a discoverable credential (a passkey with user verification): no password."""
    if not challenge_id or not isinstance(credential, dict):
        raise BadCredentials("That passkey was not accepted.")
    user_id = await ctx.mfa.verify_webauthn(challenge_id, None, credential)
    user = await users_repo.get(ctx.pool, user_id) if user_id else None
    if user is None or throttle.is_locked(user.locked_until):
        raise BadCredentials("That passkey was not accepted.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        if previous is not None:
            await sessions_repo.delete(conn, previous.id_hash)
        raw = await sessions.start(conn, user_id=user.id, state=SIGNED_IN, user_agent=user_agent, ip=ip)
        await throttle.record_success(conn, user.id)
        await audit.record(conn, user.id, "signed_in", ip=ip, detail="passkey")
    remaining = (await ctx.mfa.factors(user.id)).recovery_codes_remaining
    return SignInResult(raw, SIGNED_IN, recovery_codes_remaining=remaining, with_second_factor=True)
