"""The signed-in user's own account: read and edit the profile, change the password."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from portal_shared.events import PasswordChanged, UserUpdated
from portal_shared.outbox import enqueue

from profile_service import passwords, sessions
from profile_service.config import SERVICE
from profile_service.context import Context
from profile_service.errors import NotFound, ValidationFailed
from profile_service.models import Session, User
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import tokens as tokens_repo
from profile_service.repository import users as users_repo
from profile_service.signin import check_password
from profile_service.validation import clean_fields, clean_name, clean_phone

EDITABLE = {"name": clean_name, "phone": clean_phone}
REFUSED_MESSAGES = {
    "email": "Contact support to change your email address",
    "company": "Your MSP manages this field.",
    "client_id": "Your MSP manages this field.",
    "title": "Your MSP manages this field.",
    "mobile": "Your MSP manages this field.",
}


async def update_profile(ctx: Context, session: Session, body: dict[str, Any], *, ip: str) -> User:
    """Apply {name?, phone?} to the viewed account; other fields are refused (422) with a reason."""
    values, errors = clean_fields(body, EDITABLE)
    for name in body:
        if name not in EDITABLE:
            errors[name] = [REFUSED_MESSAGES.get(name, "This field cannot be changed here.")]
    if errors:
        raise ValidationFailed(errors)
    user = session.effective_user
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await users_repo.get(conn, user.id, for_update=True)
        if current is None:
            raise NotFound()
        changes = {k: v for k, v in values.items() if getattr(current, k) != v}
        if changes:
            await users_repo.update_fields(conn, user.id, changes)
            updated = await users_repo.get(conn, user.id)
            assert updated is not None
            await enqueue(conn, UserUpdated(user_id=user.id, email=updated.email, name=updated.name), source=SERVICE)
            by = f" by {session.user.email} (impersonating)" if session.impersonated else ""
            await audit.record(conn, user.id, "profile_updated", ip=ip,
                               detail=f"changed {', '.join(sorted(changes))}{by}")
            return updated
    return current


def new_password_errors(new_password: Any, confirm: Any, user: User) -> dict[str, list[str]]:
    """Field errors for a new password and its confirmation (empty when acceptable)."""
    errors: dict[str, list[str]] = {}
    if not isinstance(new_password, str) or not new_password:
        errors["new_password"] = ["Enter a new password."]
    else:
        problems = passwords.password_problems(new_password, email=user.email, name=user.name)
        if problems:
            errors["new_password"] = problems
    if not isinstance(confirm, str) or not confirm:
        errors["confirm_password"] = ["Confirm the new password."]
    elif isinstance(new_password, str) and passwords.normalize(confirm) != passwords.normalize(new_password):
        errors["confirm_password"] = ["The passwords do not match."]
    return errors


async def change_password(ctx: Context, session: Session, body: dict[str, Any], *, ip: str) -> str:
    """Needs the current password (wrong: 422, counted by the throttle); ends every other session and voids
    every mailed reset or invitation link. Returns the current session's new id (rotated: its credential
    changed)."""
    user = session.user
    current = body.get("current_password")
    errors = new_password_errors(body.get("new_password"), body.get("confirm_password"), user)
    if not isinstance(current, str) or not current:
        errors = {"current_password": ["Enter your current password."], **errors}
    if errors:
        raise ValidationFailed(errors)
    if not await check_password(ctx, user, current, ip=ip, flow="password change"):
        raise ValidationFailed({"current_password": ["The current password is incorrect."]})
    new_hash = await ctx.hasher.hash(body["new_password"])
    async with ctx.pool.acquire() as conn, conn.transaction():
        await users_repo.set_new_password(conn, user.id, new_hash)
        await sessions_repo.delete_all(conn, user.id, except_hash=session.id_hash)
        raw = await sessions.rotate(conn, session)
        await tokens_repo.void_all(conn, user.id)
        await enqueue(conn, PasswordChanged(user_id=user.id, method="change"), source=SERVICE)
        await audit.record(conn, user.id, "password_changed", ip=ip, detail="changed by the user; other sessions ended")
    return raw


async def raise_two_factor_latch(pool: asyncpg.Pool, user_id: str, at: datetime) -> None:
    """mfa, before it commits a user's first factor: the latch goes up (consumers.py says what it is), and
    the factor list kept for sign-in is void."""
    async with pool.acquire() as conn, conn.transaction():
        await users_repo.set_two_factor(conn, user_id, True, at)
        await users_repo.forget_second_factors(conn, user_id)
