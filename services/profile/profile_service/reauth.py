"""Step-up: a signed-in user proves a factor again (password, TOTP or key: sign-in's strategies); the
session gets a new id and counts as re-authenticated for 10 minutes. Failures count toward the throttle:
on the known device of the session's browser when its device cookie names one of the account's devices,
else untrusted. (SSO re-authentication goes through the provider: sso.py.)"""

from __future__ import annotations

from typing import Any

from profile_service import devices, second_factors, sessions, throttle
from profile_service.context import Context
from profile_service.errors import ValidationFailed, field_error
from profile_service.models import Session
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import throttle as throttle_repo
from profile_service.signin import check_password


async def webauthn_options(ctx: Context, session: Session) -> dict[str, Any]:
    challenge = await ctx.mfa.webauthn_options(session.user.id)
    await sessions_repo.update(ctx.pool, session.id_hash, {"webauthn_challenge_id": challenge.challenge_id})
    return challenge.options


# The body field each way of re-authenticating uses, its factor (None: the password), and its messages.
_WAYS = (
    ("password", None, "Enter your password.", "The password is incorrect."),
    ("totp_code", second_factors.TOTP, "Enter the code from your authenticator app.", "The code is incorrect."),
    ("credential", second_factors.SECURITY_KEY, "Use your security key again.",
     "That security key was not accepted."),
)


async def reauthenticate(ctx: Context, session: Session, body: dict[str, Any], *, ip: str,
                         device_cookie: str | None = None) -> str:
    """Check the one factor in `body` (through the same strategies as sign-in); the session's new raw id."""
    user = session.user
    way = next((w for w in _WAYS if w[0] in body), None)
    if way is None:
        raise ValidationFailed({"password": ["Enter your password."]})
    field, factor, missing, wrong = way
    value = body[field]
    if factor is second_factors.SECURITY_KEY:
        if not isinstance(value, dict) or not session.webauthn_challenge_id:
            raise field_error(field, missing)
    elif not isinstance(value, str) or not value.strip():
        raise field_error(field, missing)
    device = await devices.find(ctx.pool, device_cookie, user.id)
    counter = throttle.counter_of(device)
    if factor is None:
        ok = await check_password(ctx, user, value, ip=ip, flow="re-authentication", device=device)
    else:
        ok = await second_factors.attempt(ctx, factor, session, value, device=device, ip=ip,
                                          flow="re-authentication") is not None
    if not ok:
        raise field_error(field, wrong)
    async with ctx.pool.acquire() as conn, conn.transaction():
        raw = await sessions.step_up(conn, session)
        await throttle_repo.record_success(conn, user.id, counter)
        await audit.record(conn, user.id, "reauthenticated", ip=ip, detail=factor.key if factor else "password")
    return raw
