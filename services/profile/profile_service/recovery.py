"""Getting back into an account: password reset and accepting an invitation (undo.py: "This wasn't me").

None of these signs anyone in: setting a password ends every session, and the user then signs in
with the new password and, when two-factor is on, their second factor.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import structlog
from portal_shared.events import PasswordChanged, PasswordResetRequested
from portal_shared.outbox import enqueue

from profile_service import sessions
from profile_service.accounts import new_password_errors
from profile_service.config import SERVICE
from profile_service.context import Context
from profile_service.errors import InvalidResetToken, ValidationFailed
from profile_service.models import User
from profile_service.repository import activity as activity_repo
from profile_service.repository import audit
from profile_service.repository import devices as devices_repo
from profile_service.repository import sso as sso_repo
from profile_service.repository import throttle as throttle_repo
from profile_service.repository import tokens as tokens_repo
from profile_service.repository import users as users_repo
from profile_service.views import iso

log = structlog.get_logger("profile.recovery")
RESET_LIFETIME_SECONDS = 3600
INVITE_LIFETIME_SECONDS = 3 * 24 * 3600
RESETS_PER_WINDOW = 3
RESET_WINDOW_SECONDS = 15 * 60
SSO_ONLY_NOTE = "password_reset_sso_only"


def link(base_url: str, page: str, token: str) -> str:
    return f"{base_url}/portal/{page}?token={quote(token)}"


async def issue_reset(conn: asyncpg.Connection, ctx: Context, user: User) -> None:
    """A new reset token (voiding older ones) and its event, in the caller's transaction."""
    token, expires_at = await tokens_repo.issue(conn, user.id, tokens_repo.RESET,
                                                lifetime_seconds=RESET_LIFETIME_SECONDS)
    await enqueue(conn, PasswordResetRequested(
        user_id=user.id, email=user.email, reset_url=link(ctx.settings.base_url, "reset-password", token),
        expires_at=iso(expires_at) or ""), source=SERVICE)


async def request_reset(ctx: Context, email: str, *, ip: str) -> None:
    """Email a reset link, at most 3 per 15 minutes per account; beyond that silently nothing.

    Runs after the 202 has been sent, so the answer takes the same time whether or not the account exists.
    """
    user = await users_repo.get_by_email(ctx.pool, email)
    if user is None or not user.active:  # a deactivated account is sent nothing (and told nothing)
        return
    async with ctx.pool.acquire() as conn, conn.transaction():
        await users_repo.get(conn, user.id, for_update=True)  # serialises concurrent requests for the count
        recent = await tokens_repo.recent_count(conn, user.id, tokens_repo.RESET, window_seconds=RESET_WINDOW_SECONDS)
        if recent >= RESETS_PER_WINDOW:
            await audit.record(conn, user.id, "password_reset_throttled", ip=ip, detail="no email sent")
            return
        if user.client is not None and not await sso_repo.password_allowed(conn, user.client.id):
            await _point_to_sso(conn, user, ip=ip)
            return
        await issue_reset(conn, ctx, user)
        await audit.record(conn, user.id, "password_reset_requested", ip=ip, detail="reset link emailed")


async def _point_to_sso(conn: asyncpg.Connection, user: User, *, ip: str) -> None:
    """The client turned password sign-in off: no reset link (a password would not sign in), but an email
    saying to use the company's sign-in — as often as reset links would be sent."""
    assert user.client is not None
    if await audit.recent_count(conn, user.id, SSO_ONLY_NOTE, window_seconds=RESET_WINDOW_SECONDS) >= RESETS_PER_WINDOW:
        return
    issuer = await sso_repo.issuer_for_client(conn, user.client.id) or ""
    expires_at = datetime.now(UTC) + timedelta(seconds=RESET_LIFETIME_SECONDS)
    await enqueue(conn, PasswordResetRequested(user_id=user.id, email=user.email, reset_url="",
                                               expires_at=iso(expires_at) or "", sso_issuer=issuer), source=SERVICE)
    await audit.record(conn, user.id, SSO_ONLY_NOTE, ip=ip, detail=f"single sign-on only ({issuer}); no link")


async def _set_password_with_token(ctx: Context, body: dict[str, Any], purpose: str, *, ip: str) -> User:
    token = body.get("token")
    user_id = await tokens_repo.find_usable(ctx.pool, token, purpose) if isinstance(token, str) and token else None
    user = await users_repo.get(ctx.pool, user_id) if user_id else None
    if user is None or not user.active or not isinstance(token, str):
        raise InvalidResetToken()
    if purpose == tokens_repo.INVITE and user.password_hash is not None:
        raise InvalidResetToken()  # an invitation sets the first password only, never overwrites one
    errors = new_password_errors(body.get("new_password"), body.get("confirm_password"), user)
    if errors:
        raise ValidationFailed(errors)
    new_hash = await ctx.hasher.hash(body["new_password"])
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await users_repo.get(conn, user.id, for_update=True)  # serialises with other password writes
        if await tokens_repo.use(conn, token, purpose) != user.id or current is None:
            raise InvalidResetToken()  # used by a concurrent request meanwhile
        if purpose == tokens_repo.INVITE and current.password_hash is not None:
            raise InvalidResetToken()
        await users_repo.set_new_password(conn, user.id, new_hash)
        await tokens_repo.void_all(conn, user.id)  # any other link mailed before this one is void now
        await sessions.end_all(conn, user.id)
        await throttle_repo.record_success(conn, user.id)
        await devices_repo.clear_account(conn, user.id)  # the owner's own typos no longer lock their browsers
        await activity_repo.expect_next_sign_in(conn, user.id)  # its new-device notice would be noise
        if purpose == tokens_repo.RESET:
            await enqueue(conn, PasswordChanged(user_id=user.id, method="reset"), source=SERVICE)
            await audit.record(conn, user.id, "password_reset", ip=ip, detail="password set with a reset link")
        else:
            await audit.record(conn, user.id, "invitation_accepted", ip=ip, detail="first password set")
    return user


async def confirm_reset(ctx: Context, body: dict[str, Any], *, ip: str) -> None:
    await _set_password_with_token(ctx, body, tokens_repo.RESET, ip=ip)


async def accept_invitation(ctx: Context, body: dict[str, Any], *, ip: str) -> None:
    await _set_password_with_token(ctx, body, tokens_repo.INVITE, ip=ip)
