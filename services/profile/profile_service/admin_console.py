"""The admin console's service layer (issue #15): a client with its counts, a user with their state, paged
lists, resending an invitation, and deactivating (offboarding) and reactivating an account."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal_shared.ids import is_uuid

from profile_service import admin, admin_paging, sessions
from profile_service.admin_paging import Page, PageRequest
from profile_service.bodies import UNSTORABLE, storable_text
from profile_service.context import Context
from profile_service.errors import Conflict, Forbidden, NotFound, field_error
from profile_service.models import Client, Session, User
from profile_service.repository import admin as admin_repo
from profile_service.repository import audit
from profile_service.repository import tokens as tokens_repo
from profile_service.repository import users as users_repo
from profile_service.repository.admin import AuditRow, ClientRow, UserRow
from profile_service.sso_admin import sso_view

MAX_QUERY = 100  # characters of a search that are used
MAX_TYPE = 100


@dataclass(frozen=True, slots=True)
class ClientDetail:
    client: Client
    user_count: int
    two_factor_count: int
    sso: dict[str, Any] | None  # the contract's sso object (sso_admin's view), None without a provider


def _search(query: Mapping[str, str], name: str = "q") -> str | None:
    text = query.get(name)
    if text is None:
        return None
    if not storable_text(text):
        raise field_error(name, UNSTORABLE)
    return text.strip()[:MAX_QUERY] or None


async def client_detail(ctx: Context, client_id: str) -> ClientDetail:
    if not is_uuid(client_id):
        raise NotFound("No such client.")
    client = await users_repo.get_client(ctx.pool, client_id)
    if client is None:
        raise NotFound("No such client.")
    users, two_factor = await admin_repo.client_counts(ctx.pool, client.id)
    return ClientDetail(client, users, two_factor, await sso_view(ctx.pool, client.id))


def _client_key(values: list[Any]) -> tuple[Any, ...] | None:
    key = admin_paging.texts(values, 2)
    return key if key is not None and is_uuid(key[1]) else None


async def clients_page(ctx: Context, query: Mapping[str, str]) -> Page[ClientRow]:
    wanted = admin_paging.page_request(query, "clients", _client_key)
    rows = await admin_repo.clients_page(ctx.pool, after=wanted.after,  # type: ignore[arg-type]
                                         query=_search(query), limit=wanted.limit + 1)
    return admin_paging.split(rows, wanted.limit, lambda r: r.sort_key)


async def users_page(ctx: Context, query: Mapping[str, str]) -> Page[UserRow]:
    client_id = query.get("client_id")
    if client_id is not None and not is_uuid(client_id):
        raise field_error("client_id", "Enter a valid id.")
    wanted = admin_paging.page_request(query, "users", lambda v: admin_paging.texts(v, 2))
    rows = await admin_repo.users_page(ctx.pool, client_id=client_id, after=wanted.after,  # type: ignore[arg-type]
                                       query=_search(query), limit=wanted.limit + 1)
    return admin_paging.split(rows, wanted.limit, lambda r: r.sort_key)


def _audit_key(values: list[Any]) -> tuple[Any, ...] | None:
    if len(values) != 2 or not isinstance(values[0], str) or type(values[1]) is not int or values[1] < 0:
        return None
    try:
        at = datetime.fromisoformat(values[0])
    except ValueError:
        return None
    return (at, values[1]) if at.tzinfo is not None and values[1] < 2**63 else None


async def _user(ctx: Context, user_id: str) -> User:
    if not is_uuid(user_id):
        raise NotFound("No such user.")
    user = await users_repo.get(ctx.pool, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


async def audit_log(ctx: Context, user_id: str, query: Mapping[str, str], *, paged: bool) -> Page[AuditRow]:
    """Newest first, of one `type` when given; the plain list (paged=False) keeps its old 500-entry cap."""
    if len(query.get("type") or "") > MAX_TYPE:
        raise field_error("type", "No audit entry has a type that long.")
    type_ = _search(query, "type")
    wanted = admin_paging.page_request(query, "audit", _audit_key) if paged else PageRequest(500, None)
    user = await _user(ctx, user_id)
    rows = await admin_repo.audit_page(ctx.pool, user.id, type_=type_, after=wanted.after,  # type: ignore[arg-type]
                                       limit=wanted.limit + 1)
    return admin_paging.split(rows, wanted.limit, lambda r: r.sort_key)


async def user_detail(ctx: Context, user_id: str) -> UserRow:
    if not is_uuid(user_id):
        raise NotFound("No such user.")
    row = await admin_repo.user_status(ctx.pool, user_id)
    if row is None:
        raise NotFound("No such user.")
    return row


async def resend_invitation(ctx: Context, acting: Session, user_id: str, *, ip: str) -> None:
    """A new invitation email; issuing its token voids the older invitation links."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        user = await _locked(conn, user_id)
        if user.password_hash is not None:
            raise Conflict("This account already has a password: the invitation was accepted.")
        if not user.active:
            raise Conflict("This account is deactivated: reactivate it before inviting again.")
        await admin.invite(conn, ctx, user)
        await audit.record(conn, user.id, "invitation_resent", ip=ip, detail=f"by {acting.user.email}")


async def _locked(conn: Any, user_id: str) -> User:
    if not is_uuid(user_id):
        raise NotFound("No such user.")
    user = await users_repo.get(conn, user_id, for_update=True)
    if user is None:
        raise NotFound("No such user.")
    return user


def _may_switch(acting: Session, user: User, verb: str) -> None:
    """Admins cannot lock each other out (operators manage admins); nor themselves, by a slip of the hand."""
    if user.id == acting.user.id:
        raise Conflict(f"You cannot {verb} your own account.")
    if user.is_admin:
        raise Forbidden(f"MSP admins cannot {verb} another MSP admin; operators use portal-admin.")


async def deactivate(ctx: Context, acting: Session, user_id: str, *, ip: str) -> None:
    """Offboarding: no sign-in, reset or invitation works until reactivated. Every session ends now (the
    session loader refuses an inactive account too), and every mailed link is void, so reactivating
    never brings an old link back to life."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        user = await _locked(conn, user_id)
        _may_switch(acting, user, "deactivate")
        if not await admin_repo.set_active(conn, user.id, False):
            return  # already inactive: nothing more to end
        await sessions.end_all(conn, user.id)
        await tokens_repo.void_all(conn, user.id)
        await audit.record(conn, user.id, "deactivated", ip=ip,
                           detail=f"by {acting.user.email}; every session ended")


async def reactivate(ctx: Context, acting: Session, user_id: str, *, ip: str) -> None:
    """Back as before: the same password and factors (nothing else was touched)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        user = await _locked(conn, user_id)
        _may_switch(acting, user, "reactivate")
        if await admin_repo.set_active(conn, user.id, True):
            await audit.record(conn, user.id, "reactivated", ip=ip, detail=f"by {acting.user.email}")
