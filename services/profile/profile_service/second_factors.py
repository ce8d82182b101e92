"""The second factors as strategies (Kratos's pattern): one table, used by sign-in and re-authentication.

Each factor knows how mfa checks it; `attempt` is the one way any check runs: a locked counter fails
without asking mfa, and a failure is counted on the throttle and audited (and, during sign-in, shown in
the owner's activity) in one statement, whichever flow it came from. `offered` says which factors a
sign-in offers after its first step.

The lock is judged on the rows this request already read (the session's account, the browser's known
device), as the password check does, not by another query: a lock that lands between that read and the
check is one a parallel failure set a few milliseconds ago, and the check would have raced it anyway;
what bounds parallel guesses on one pending sign-in is its reserved attempts (signin.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from profile_service import activity, throttle
from profile_service.context import Context
from profile_service.mfa_client import Verification
from profile_service.models import Session, User
from profile_service.repository import throttle as throttle_repo
from profile_service.repository import users as users_repo
from profile_service.repository.devices import Device

SIGN_IN_FLOW = "sign-in"
FailureHook = Callable[[asyncpg.Connection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Factor:
    key: str  # the name the contract's `second_factors` lists
    label: str  # how the audit log and the activity feed name it
    check: Callable[[Context, Session, Any], Awaitable[Verification]]


async def _totp(ctx: Context, session: Session, code: str) -> Verification:
    return await ctx.mfa.verify_totp(session.user.id, code.strip())


async def _recovery_code(ctx: Context, session: Session, code: str) -> Verification:
    return await ctx.mfa.verify_recovery_code(session.user.id, code.strip())


async def _security_key(ctx: Context, session: Session, credential: Any) -> Verification:
    # The challenge was issued for this session (its id stored with it) and is single use in mfa; the key
    # must prove this session's own account, not just someone.
    if not session.webauthn_challenge_id or not isinstance(credential, dict):
        return Verification(ok=False)
    verification = await ctx.mfa.verify_webauthn(session.webauthn_challenge_id, session.user.id, credential)
    return verification if verification.user_id == session.user.id else Verification(ok=False)


TOTP = Factor("totp", "totp", _totp)
RECOVERY_CODE = Factor("recovery_code", "recovery code", _recovery_code)
SECURITY_KEY = Factor("webauthn", "security key", _security_key)
FACTORS = {factor.key: factor for factor in (TOTP, RECOVERY_CODE, SECURITY_KEY)}


async def offered(ctx: Context, user: User) -> list[str] | None:
    """The second factors (contract names) a sign-in of `user` asks for after its first step; None when it
    needs none. Only None lets a sign-in complete on its first step: a list, even an empty one, requires a
    second factor.

    The two-factor latch decides whether mfa must be asked at all (down: mfa has no factor;
    docs/internal-api.md). While it is up, the list mfa last answered is kept on the account and offered
    until any change of the account's factors clears it (mfa's events, the latch going up, an undo, a
    failed check), so an account's sign-ins ask mfa once per change, not once each. The list only picks
    which checks the page offers: every check still goes to mfa, and only mfa's live answer can let a
    sign-in through without a second factor, so a list left stale costs a failed check, never a bypass.
    """
    if not user.two_factor_enabled:
        return None
    if user.second_factors:
        return user.second_factors
    factors = await ctx.mfa.factors(user.id)
    if not factors.two_factor_enabled:  # a latch left up (an enable rolled back): not kept, asked again
        return None
    # Kept only if no change was seen since this sign-in read the account (its epoch): an answer older
    # than a change is never stored after it.
    if factors.second_factors:
        await users_repo.remember_second_factors(ctx.pool, user.id, factors.second_factors,
                                                 user.second_factors_epoch)
    return factors.second_factors


async def attempt(ctx: Context, factor: Factor, session: Session, value: Any, *, device: Device | None, ip: str,
                  flow: str, on_failure: FailureHook | None = None) -> Verification | None:
    """Check `value` with `factor` for the session's account: its verification when it passed, else None.

    `device`: the account's known device the attempt comes from, whose counter it counts on (None: the
    account's untrusted counter). `flow` ("sign-in", "re-authentication") goes into the audit;
    `on_failure` runs in the failure's transaction (sign-in voids its pending session there once its
    attempts are spent)."""
    user_id = session.user.id
    counter = throttle.counter_of(device)
    if not throttle.counter_locked(session.user, device):
        verification = await factor.check(ctx, session, value)
        if verification.ok:
            return verification
    signing_in = flow == SIGN_IN_FLOW
    what = factor.label if signing_in else f"{flow}: {factor.label}"
    async with ctx.pool.acquire() as conn, conn.transaction():
        await throttle_repo.record_failure(conn, user_id, counter, type_="second_factor_failed", ip=ip, detail=what,
                                      refused_detail=f"{what} (throttled)",
                                      sign_in_factor=activity.SECOND_FACTORS[factor.label] if signing_in else None)
        # The failure may be a check of a factor the account no longer has (the kept list's change not
        # yet heard of): the next sign-in asks mfa afresh.
        await users_repo.forget_second_factors(conn, user_id)
        if on_failure is not None:
            await on_failure(conn)
    return None
