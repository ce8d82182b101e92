"""The MSP admin's actions: clients, users and invitations, impersonation, two-factor reset (the console's
lists, details and account switches are in admin_console.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
from portal_shared.events import EmailChanged, ImpersonationStarted, UserCreated, UserInvited, UserUpdated
from portal_shared.outbox import enqueue

from profile_service import sessions
from profile_service.bodies import UNSTORABLE, storable_text
from profile_service.config import SERVICE
from profile_service.context import Context
from profile_service.errors import Conflict, Forbidden, NotFound, ReauthRequired, ValidationFailed, field_error
from profile_service.models import CLIENT_USER, Client, Session, User
from profile_service.recovery import INVITE_LIFETIME_SECONDS, link
from profile_service.repository import activity as activity_repo
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import tokens as tokens_repo
from profile_service.repository import users as users_repo
from profile_service.validation import (
    FieldError,
    clean_email,
    clean_fields,
    clean_name,
    clean_optional_text,
    clean_phone,
    clean_uuid,
)
from profile_service.views import iso

USER_RULES = {"email": clean_email, "name": clean_name, "client_id": clean_uuid, "title": clean_optional_text,
              "mobile": clean_phone, "phone": clean_phone}
REASON_MAX = 500


async def create_client(ctx: Context, body: dict[str, Any]) -> Client:
    try:
        name = clean_name(body.get("name"))
    except FieldError as exc:
        raise field_error("name", str(exc)) from None
    async with ctx.pool.acquire() as conn:
        return await users_repo.insert_client(conn, name)


async def list_clients(ctx: Context) -> list[Client]:
    return await users_repo.list_clients(ctx.pool)


def _validate(body: dict[str, Any], *, required: tuple[str, ...]) -> dict[str, Any]:
    values, errors = clean_fields(body, USER_RULES)
    for name in required:
        if name not in body and name not in errors:
            errors[name] = ["This field is required."]
    for name in body:
        if name not in USER_RULES:
            errors[name] = ["Unknown field."]
    if errors:
        raise ValidationFailed(errors)
    return values


async def _require_client(conn: asyncpg.Connection, client_id: str) -> None:
    if await users_repo.get_client(conn, client_id) is None:
        raise field_error("client_id", "Choose an existing client.")


async def invite(conn: asyncpg.Connection, ctx: Context, user: User) -> None:
    token, expires_at = await tokens_repo.issue(conn, user.id, tokens_repo.INVITE,
                                                lifetime_seconds=INVITE_LIFETIME_SECONDS)
    await enqueue(conn, UserInvited(user_id=user.id, email=user.email, name=user.name,
                                    set_password_url=link(ctx.settings.base_url, "accept-invite", token),
                                    expires_at=iso(expires_at) or ""), source=SERVICE)


async def create_user(ctx: Context, admin: Session, body: dict[str, Any], *, ip: str) -> User:
    """A client user without a password, and an invitation email with a set-password link."""
    values = _validate(body, required=("email", "name", "client_id"))
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _require_client(conn, values["client_id"])
        if await users_repo.email_taken(conn, values["email"]):
            raise Conflict("An account with this email address already exists.")
        try:
            async with conn.transaction():
                user_id = await users_repo.insert(conn, role=CLIENT_USER, **values)
        except asyncpg.UniqueViolationError:
            raise Conflict("An account with this email address already exists.") from None
        user = await users_repo.get(conn, user_id)
        assert user is not None
        await enqueue(conn, UserCreated(user_id=user.id, email=user.email, name=user.name), source=SERVICE)
        await invite(conn, ctx, user)
        await audit.record(conn, user.id, "user_created", ip=ip, detail=f"invited by {admin.user.email}")
    return user


async def list_users(ctx: Context, *, client_id: str | None, query: str | None) -> list[User]:
    if client_id is not None:
        try:
            client_id = clean_uuid(client_id)
        except FieldError as exc:
            raise field_error("client_id", str(exc)) from None
    if query is not None and not storable_text(query):
        raise field_error("q", UNSTORABLE)
    return await users_repo.list_users(ctx.pool, client_id=client_id, query=(query or "").strip()[:100] or None)


def require_recent_auth(admin: Session) -> None:
    """Taking over an account's sign-in (its address, its second factor, its view) needs the admin's own
    sign-in or re-authentication in the last 10 minutes: a stolen admin session alone cannot."""
    if not sessions.recently_authenticated(admin):
        raise ReauthRequired()


def _not_another_admin(admin: Session, user: User, action: str) -> None:
    """Admins cannot take over each other's accounts; they are managed with `portal-admin` (operators)."""
    if user.is_admin and user.id != admin.user.id:
        raise Forbidden(f"MSP admins cannot {action} of another MSP admin; operators use portal-admin.")


async def _target(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, *, for_update: bool = False) -> User:
    try:
        user = await users_repo.get(conn, user_id, for_update=for_update)
    except ValueError:
        user = None
    if user is None:
        raise NotFound("No such user.")
    return user


async def update_user(ctx: Context, admin: Session, user_id: str, body: dict[str, Any], *, ip: str) -> User:
    values = _validate(body, required=())
    for name in ("email", "name", "client_id"):
        if name in body and body[name] is None:
            raise field_error(name, "This field cannot be empty.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        user = await _target(conn, user_id, for_update=True)
        new_email = values.get("email")
        email_changes = new_email is not None and new_email != user.email
        if email_changes:
            _not_another_admin(admin, user, "change the sign-in address")
            require_recent_auth(admin)
        if "client_id" in values:
            if user.is_admin:
                raise field_error("client_id", "MSP admins do not belong to a client.")
            await _require_client(conn, values["client_id"])
        if "email" in values and await users_repo.email_taken(conn, values["email"], except_id=user.id):
            raise Conflict("An account with this email address already exists.")
        current = {"client_id": user.client.id if user.client else None, "email": user.email, "name": user.name,
                   "title": user.title, "mobile": user.mobile, "phone": user.phone}
        changes = {k: v for k, v in values.items() if current[k] != v}
        if not changes:
            return user
        try:
            async with conn.transaction():
                await users_repo.update_fields(conn, user.id, changes)
        except asyncpg.UniqueViolationError:
            raise Conflict("An account with this email address already exists.") from None
        updated = await _target(conn, user.id)
        await enqueue(conn, UserUpdated(user_id=user.id, email=updated.email, name=updated.name), source=SERVICE)
        if "email" in changes:
            await announce_email_change(conn, user, updated)
        await audit.record(conn, user.id, "user_updated", ip=ip,
                           detail=f"{', '.join(sorted(changes))} changed by {admin.user.email}")
    return updated


async def announce_email_change(conn: asyncpg.Connection, before: User, after: User) -> None:
    """Both addresses are told (the old one can undo it); links mailed to the old address are void."""
    envelope = await enqueue(conn, EmailChanged(user_id=after.id, old_email=before.email, new_email=after.email),
                             source=SERVICE)
    await users_repo.record_email_change(conn, envelope.id, after.id, before.email, after.email)
    await tokens_repo.void_all(conn, after.id)


async def impersonate(ctx: Context, admin: Session, user_id: str, reason: Any, *, ip: str) -> str:
    """The admin's session views `user_id`'s account (with a new session id); the user is emailed who and
    why. Returns the session's new raw id."""
    if admin.impersonated is not None:
        raise Conflict("Stop viewing the current account first.")
    if not isinstance(reason, str) or len(reason.strip()) < 3:
        raise field_error("reason", "Give the reason for viewing this account.")
    reason = " ".join(reason.split())[:REASON_MAX]
    async with ctx.pool.acquire() as conn, conn.transaction():
        user = await _target(conn, user_id)
        if user.is_admin:
            raise Forbidden("MSP admin accounts cannot be viewed as their user.")
        require_recent_auth(admin)
        await sessions_repo.update(conn, admin.id_hash, {"impersonated_user_id": user.id,
                                                         "impersonation_reason": reason})
        raw = await sessions.rotate(conn, admin)
        await enqueue(conn, ImpersonationStarted(user_id=user.id, admin_id=admin.user.id, admin_name=admin.user.name,
                                                 reason=reason), source=SERVICE)
        await audit.record(conn, user.id, "impersonation_started", ip=ip,
                           detail=f"{admin.user.name} <{admin.user.email}>: {reason}")
        await audit.record(conn, admin.user.id, "impersonation_started", ip=ip, detail=f"{user.email}: {reason}")
    return raw


async def stop_impersonation(ctx: Context, admin: Session, *, ip: str) -> str:
    """Back to the admin's own account, with a new session id (returned)."""
    user = admin.impersonated
    if user is None:
        raise Conflict("You are not viewing another account.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sessions_repo.update(conn, admin.id_hash, {"impersonated_user_id": None, "impersonation_reason": None})
        raw = await sessions.rotate(conn, admin)
        await audit.record(conn, user.id, "impersonation_stopped", ip=ip,
                           detail=f"{admin.user.name} <{admin.user.email}>")
        await audit.record(conn, admin.user.id, "impersonation_stopped", ip=ip, detail=user.email)
        # The viewed user's activity shows when the viewing ended, beside its start (the event's item).
        await activity_repo.record(conn, user.id, "impersonation_stopped", ip=ip, user_agent=admin.user_agent,
                                   detail={"admin_id": admin.user.id, "admin_name": admin.user.name,
                                           "reason": admin.impersonation_reason or ""})
    return raw


async def reset_two_factor(ctx: Context, admin: Session, user_id: str, *, ip: str) -> None:
    """mfa removes every factor and code and emits mfa.reset_by_admin (which emails the user); every session
    of the account ends (one signed in with a removed factor must not outlive it)."""
    user = await _target(ctx.pool, user_id)
    _not_another_admin(admin, user, "reset the two-factor authentication")
    require_recent_auth(admin)
    await ctx.mfa.reset(user.id, admin.user.id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sessions.end_all(conn, user.id)
        await users_repo.forget_second_factors(conn, user.id)  # before mfa's event lowers the latch
        await audit.record(conn, user.id, "two_factor_reset", ip=ip,
                           detail=f"by {admin.user.email}; every session ended")
