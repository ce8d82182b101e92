"""Step-up: a signed-in user proves a factor again (password, TOTP or key); the session gets a new id
and counts as re-authenticated for 10 minutes. Failures count toward the throttle: on the known device of
the session's browser when its device cookie names one of the account's devices, else untrusted."""

from __future__ import annotations

from typing import Any

from profile_service import audit, devices, sessions, sessions_repo, throttle
from profile_service.context import Context
from profile_service.errors import ValidationFailed, field_error
from profile_service.models import Session
from profile_service.signin import check_password


async def webauthn_options(ctx: Context, session: Session) -> dict[str, Any]:
    challenge = await ctx.mfa.webauthn_options(session.user.id)
    await sessions_repo.update(ctx.pool, session.id_hash, {"webauthn_challenge_id": challenge.challenge_id})
    return challenge.options


async def reauthenticate(ctx: Context, session: Session, body: dict[str, Any], *, ip: str,
                         device_cookie: str | None = None) -> str:
    """Check the one factor in `body`; returns the session's new raw id."""
    user = session.user
    device = await devices.find(ctx.pool, device_cookie, user.id)
    counter = device.token_hash if device is not None else None
    if "password" in body:
        field, method = "password", "password"
        password = body["password"]
        if not isinstance(password, str) or not password:
            raise field_error("password", "Enter your password.")
        ok = await check_password(ctx, user, password, ip=ip, flow="re-authentication", device=device)
    elif "totp_code" in body:
        field, method = "totp_code", "totp"
        code = body["totp_code"]
        if not isinstance(code, str) or not code.strip():
            raise field_error("totp_code", "Enter the code from your authenticator app.")
        ok = await _second_factor(ctx, user.id, counter, "totp", ip,
                                  lambda: ctx.mfa.verify_totp(user.id, code.strip()))
    elif "credential" in body:
        field, method = "credential", "webauthn"
        credential = body["credential"]
        challenge_id = session.webauthn_challenge_id
        if not isinstance(credential, dict) or not challenge_id:
            raise field_error("credential", "Use your security key again.")
        ok = await _second_factor(ctx, user.id, counter, "security key", ip,
                                  lambda: _key_proves(ctx, challenge_id, user.id, credential))
    else:
        raise ValidationFailed({"password": ["Enter your password."]})
    if not ok:
        messages = {"password": "The password is incorrect.", "totp_code": "The code is incorrect.",
                    "credential": "That security key was not accepted."}
        raise field_error(field, messages[field])
    async with ctx.pool.acquire() as conn, conn.transaction():
        raw = await sessions.step_up(conn, session)
        await throttle.record_success(conn, user.id, counter)
        await audit.record(conn, user.id, "reauthenticated", ip=ip, detail=method)
    return raw


async def _key_proves(ctx: Context, challenge_id: str, user_id: str, credential: dict[str, Any]) -> bool:
    return await ctx.mfa.verify_webauthn(challenge_id, user_id, credential) == user_id


async def _second_factor(ctx: Context, user_id: str, counter: bytes | None, method: str, ip: str,
                         check: Any) -> bool:
    if not await throttle.locked(ctx.pool, user_id, counter) and await check():
        return True
    await throttle.record_failure(ctx.pool, user_id, counter, type_="second_factor_failed", ip=ip,
                                  detail=f"re-authentication: {method}",
                                  refused_detail=f"re-authentication: {method} (throttled)")
    return False
