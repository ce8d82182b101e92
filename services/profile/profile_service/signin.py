"""Signing in: the password step, the second-factor steps (checked by mfa) and passkey sign-in.

Every path answers a wrong email, a wrong password and a throttled account alike (same status, body
and, by verifying a dummy hash and running the same statements, the same time). The throttle counts
failures of every factor and is cleared only by a complete sign-in, so a known password does not buy
unlimited code guesses. It counts per known device when the browser's device cookie names one of the
account's devices, else on the account's untrusted counter (throttle.py, devices.py); a completed
sign-in makes the browser a known device. A passkey is not guessable: password locks never refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from profile_service import activity, devices, second_factors, sessions, throttle
from profile_service.context import Context
from profile_service.errors import BadCredentials, Conflict, NotSignedIn, SecondFactorFailed, SignInExpired
from profile_service.models import SECOND_FACTOR_REQUIRED, SIGNED_IN, VOID, Session, User
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import sso as sso_repo
from profile_service.repository import throttle as throttle_repo
from profile_service.repository import users as users_repo
from profile_service.second_factors import SIGN_IN_FLOW, Factor

log = structlog.get_logger("profile.signin")
PASSWORD, PASSKEY = "password", "passkey"  # first factors (sso.py adds "sso")
MAX_PASSWORD_INPUT = 1024  # longer input is refused as wrong without hashing megabytes

@dataclass(frozen=True, slots=True)
class SignInResult:
    raw_session_id: str
    state: str
    second_factors: list[str] | None = None
    recovery_codes_remaining: int | None = None
    with_second_factor: bool = False
    device_cookie: str | None = None  # set on a completed sign-in: the browser's (new) device cookie
    new_device: bool = False  # completed from a browser that was not a known device of the account

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state}
        if self.second_factors is not None:
            body["second_factors"] = self.second_factors
        if self.with_second_factor:
            body["recovery_codes_remaining"] = self.recovery_codes_remaining
        return body


async def check_password(ctx: Context, user: User | None, password: str, *, ip: str, flow: str,
                         device: devices.Device | None = None) -> bool:
    """Verify a password against the account, counting failures; a locked counter always fails.

    `device`: the account's known device this attempt comes from (its counter and lock apply), else the
    account's untrusted counter does. With no account (or a locked one) a dummy hash is verified and a
    failure runs the same recording statement, so every answer takes the same work.
    """
    locked = throttle.counter_locked(user, device)
    # A deactivated account, or one whose client signs in with SSO only, answers as a wrong password
    # does, after the same (dummy) hash.
    # The lookup runs for an unknown account too (with no client), so both take the same statements.
    client = user.client if user is not None else None
    allowed = await sso_repo.password_allowed(ctx.pool, client.id if client else None)
    usable = user is not None and user.active and allowed and not locked and len(password) <= MAX_PASSWORD_INPUT
    ok = await ctx.hasher.verify(user.password_hash if usable and user else None,
                                 password[:MAX_PASSWORD_INPUT])
    if not ok or user is None:
        where = "known device" if device is not None else "untrusted browser"
        await throttle_repo.record_failure(ctx.pool, user.id if user else None, throttle.counter_of(device),
                                      type_="password_failed", ip=ip, detail=f"{flow}: wrong password ({where})",
                                      refused_detail=f"{flow}: refused, throttled ({where})",
                                      sign_in_factor="password" if flow == SIGN_IN_FLOW else None)
        return False
    if user.password_hash and ctx.hasher.needs_rehash(user.password_hash):
        await users_repo.set_password_hash(ctx.pool, user.id, await ctx.hasher.hash(password))
    return True


@dataclass(frozen=True, slots=True)
class HowSignedIn:
    """How a completed sign-in was proved (the activity item), and where from."""

    method: str  # password, passkey or sso
    ip: str
    user_agent: str
    second_factor: str | None = None  # totp, recovery code or security key


async def confirm_password(ctx: Context, user_id: str | None, password: str, *, ip: str) -> bool:
    """mfa confirms a signed-in user's password; a failure counts on the account's throttle like any other."""
    user = await users_repo.get(ctx.pool, user_id) if user_id else None
    return await check_password(ctx, user, password, ip=ip, flow="confirmation")


async def completed(conn: asyncpg.Connection, user: User, device: devices.Device | None, device_cookie: str | None,
                    *, session_id: str, how: HowSignedIn) -> tuple[str, bool]:
    """A sign-in completed in this browser (in the caller's transaction): clear the counter it would have
    counted on, make the browser a known device and record the sign-in (activity, new-device notice);
    the browser's new device cookie and whether it was known."""
    # A known device's counter is cleared by `remember` (its row starts again); the untrusted counter only
    # needs a write when the account row (read at the start of this sign-in) shows failures.
    if device is None and (user.failed_attempts > 0 or user.locked_until is not None):
        await throttle_repo.record_success(conn, user.id)
    cookie, known = await devices.remember(conn, device_cookie, user.id)
    await activity.signed_in(conn, user, session_id=session_id, method=how.method,
                             second_factor=how.second_factor, known_device=known, ip=how.ip,
                             user_agent=how.user_agent)
    return cookie, known


async def login(ctx: Context, *, email: str, password: str, previous: Session | None, user_agent: str,
                ip: str, device_cookie: str | None = None) -> SignInResult:
    user = await users_repo.get_by_email(ctx.pool, email) if email else None
    device = await devices.find(ctx.pool, device_cookie, user.id if user else None)
    if not await check_password(ctx, user, password, ip=ip, flow=SIGN_IN_FLOW, device=device):
        raise BadCredentials()
    assert user is not None
    factors = await second_factors.offered(ctx, user)
    state = SECOND_FACTOR_REQUIRED if factors is not None else SIGNED_IN
    if state == SECOND_FACTOR_REQUIRED:  # nothing is cleared or remembered until the sign-in completes
        entry = (audit.PASSWORD_ACCEPTED, "second factor required")
        if previous is None:  # the usual case: one statement, one round trip
            raw, _ = await sessions.start(ctx.pool, user_id=user.id, state=state, user_agent=user_agent, ip=ip,
                                          method=PASSWORD, audit=entry)
        else:
            async with ctx.pool.acquire() as conn, conn.transaction():
                await sessions_repo.delete(conn, previous.id_hash)
                raw, _ = await sessions.start(conn, user_id=user.id, state=state, user_agent=user_agent, ip=ip,
                                              method=PASSWORD, audit=entry)
        return SignInResult(raw, SECOND_FACTOR_REQUIRED, second_factors=factors)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if previous is not None:
            await sessions_repo.delete(conn, previous.id_hash)
        raw, session_id = await sessions.start(conn, user_id=user.id, state=state, user_agent=user_agent, ip=ip,
                                               method=PASSWORD, audit=("signed_in", "password"))
        cookie, known = await completed(conn, user, device, device_cookie, session_id=session_id,
                                        how=HowSignedIn(PASSWORD, ip, user_agent))
    return SignInResult(raw, SIGNED_IN, device_cookie=cookie, new_device=not known)


async def session_details(ctx: Context, session: Session) -> tuple[str | None, list[str] | None]:
    """For GET /api/auth/session: the issuer of the account's client SSO, and while the sign-in waits for
    its second factor, the factors it can use (the login page resumes there after an SSO callback)."""
    user = session.effective_user
    issuer = await sso_repo.issuer_for_client(ctx.pool, user.client.id) if user.client else None
    factors = None
    if session.state == SECOND_FACTOR_REQUIRED:
        factors = (await ctx.mfa.factors(user.id)).second_factors
    return issuer, factors


def pending(session: Session | None) -> Session:
    """The pending sign-in of this request, or the 401 that says why there is none."""
    if session is None:
        raise NotSignedIn("Sign in with your password first.")
    if session.state == VOID:
        raise SignInExpired()
    if session.state == SIGNED_IN:
        raise Conflict("You are already signed in.")
    return session


async def second_factor(ctx: Context, session_cookie: str | None, *, factor: Factor, value: Any, ip: str,
                        device_cookie: str | None = None) -> SignInResult:
    """Run one second-factor attempt for the pending sign-in named by the session cookie (its CSRF token
    checked by the middleware); on success the session gets a new id.

    Failures count like password failures: on the browser's known device of the account, else untrusted."""
    limit = sessions.SECOND_FACTOR_ATTEMPTS
    # The attempt is counted before the code is checked (atomically), so parallel guesses on one pending
    # sign-in get at most `limit` evaluations; the rest find no attempt left. The same statement loads the
    # pending sign-in and the browser's known device.
    reservation = await sessions.reserve_second_factor_attempt(ctx.pool, session_cookie,
                                                               device_hash=devices.token_hash(device_cookie))
    if reservation is None:  # the generic load says why: not signed in, expired, or signed in already
        pending(await sessions.load(ctx.pool, session_cookie))
        raise SignInExpired()  # still pending: its attempts are spent
    session, device = reservation
    user = session.user

    async def void_when_spent(conn: asyncpg.Connection) -> None:
        await sessions_repo.void_if_attempts_spent(conn, session.id_hash, limit=limit)

    try:
        verification = await second_factors.attempt(ctx, factor, session, value, device=device, ip=ip,
                                                    flow=SIGN_IN_FLOW, on_failure=void_when_spent)
    except Exception:  # the check did not run to an answer (mfa or the database down): no attempt spent
        await sessions_repo.return_second_factor_attempt(ctx.pool, session.id_hash)
        raise
    if verification is None:
        raise SecondFactorFailed()
    remaining = verification.recovery_codes_remaining
    if remaining is None:  # an mfa that does not say it with the check yet
        remaining = (await ctx.mfa.factors(user.id)).recovery_codes_remaining
    async with ctx.pool.acquire() as conn, conn.transaction():
        first = session.method or PASSWORD  # how the pending sign-in passed its first step
        raw = await sessions.complete_sign_in(conn, session, method=f"{first}+{factor.key}", ip=ip,
                                              audit_detail=f"{first} and {factor.label}")
        cookie, known = await completed(conn, user, device, device_cookie, session_id=session.public_id,
                                        how=HowSignedIn(first, ip, session.user_agent, second_factor=factor.label))
    return SignInResult(raw, SIGNED_IN, recovery_codes_remaining=remaining, with_second_factor=True,
                        device_cookie=cookie, new_device=not known)


async def webauthn_options(ctx: Context, session: Session | None) -> dict[str, Any]:
    session = pending(session)
    challenge = await ctx.mfa.webauthn_options(session.user.id)
    await sessions_repo.update(ctx.pool, session.id_hash, {"webauthn_challenge_id": challenge.challenge_id})
    return challenge.options


async def passkey(ctx: Context, *, challenge_id: str | None, credential: Any, previous: Session | None,
                  user_agent: str, ip: str, device_cookie: str | None = None) -> SignInResult:
    """Sign in with a discoverable credential (a passkey with user verification): no password.

    No throttle lock refuses it: those count guesses, and a passkey's signature cannot be guessed (mfa
    checks it against a fresh single-use challenge), so a stranger's wrong passwords never block it."""
    if not challenge_id or not isinstance(credential, dict):
        raise BadCredentials("That passkey was not accepted.")
    proved = await ctx.mfa.verify_webauthn(challenge_id, None, credential)
    user = await users_repo.get(ctx.pool, proved.user_id) if proved.user_id else None
    if user is None or not user.active:
        raise BadCredentials("That passkey was not accepted.")
    device = await devices.find(ctx.pool, device_cookie, user.id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if previous is not None:
            await sessions_repo.delete(conn, previous.id_hash)
        raw, session_id = await sessions.start(conn, user_id=user.id, state=SIGNED_IN, user_agent=user_agent, ip=ip,
                                               method=PASSKEY, audit=("signed_in", "passkey"))
        cookie, known = await completed(conn, user, device, device_cookie, session_id=session_id,
                                        how=HowSignedIn(PASSKEY, ip, user_agent))
    remaining = proved.recovery_codes_remaining
    if remaining is None:  # an mfa that does not say it with the check yet
        remaining = (await ctx.mfa.factors(user.id)).recovery_codes_remaining
    return SignInResult(raw, SIGNED_IN, recovery_codes_remaining=remaining, with_second_factor=True,
                        device_cookie=cookie, new_device=not known)
