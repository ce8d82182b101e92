"""What operators do to MSP admin accounts with `portal-admin` (admins cannot do it to one another).

An MSP admin may not change another admin's address or reset their two-factor (admin.py), so a hostile
admin cannot take over a colleague; the operators who run the portal do it instead, here, with the
same effects as the API's actions: both addresses told, mailed links void, every session ended.
"""

from __future__ import annotations

import aiohttp
import asyncpg
from portal_shared.events import UserUpdated
from portal_shared.outbox import enqueue

from profile_service import sessions
from profile_service.admin import announce_email_change
from profile_service.bootstrap import AlreadyExists, connect
from profile_service.config import SERVICE
from profile_service.mfa_client import MfaClient
from profile_service.models import User
from profile_service.repository import audit
from profile_service.repository import users as users_repo

BY_OPERATOR = "an operator (portal-admin)"


class NotAnAdmin(Exception):
    """No MSP admin has that address."""


async def list_admins(database_url: str) -> list[User]:
    conn = await connect(database_url)
    try:
        return [u for u in await users_repo.list_users(conn, client_id=None, query=None) if u.is_admin]
    finally:
        await conn.close()


async def _admin(conn: asyncpg.Connection, email: str, *, for_update: bool = False) -> User:
    user = await users_repo.get_by_email(conn, email)
    if user is not None and for_update:
        user = await users_repo.get(conn, user.id, for_update=True)
    if user is None or not user.is_admin:
        raise NotAnAdmin(email)
    return user


async def change_admin_email(database_url: str, *, email: str, new_email: str) -> None:
    """Move an admin's sign-in address; the old and the new address are emailed (the old can undo it)."""
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            before = await _admin(conn, email, for_update=True)
            if await users_repo.email_taken(conn, new_email, except_id=before.id):
                raise AlreadyExists(new_email)
            await users_repo.update_fields(conn, before.id, {"email": new_email})
            after = await users_repo.get(conn, before.id)
            assert after is not None
            await enqueue(conn, UserUpdated(user_id=after.id, email=after.email, name=after.name), source=SERVICE)
            await announce_email_change(conn, before, after)
            await audit.record(conn, after.id, "user_updated", detail=f"email changed by {BY_OPERATOR}")
    finally:
        await conn.close()


async def reset_admin_two_factor(database_url: str, *, email: str, mfa_url: str, service_key: str) -> None:
    """Remove every factor and code of an admin (mfa emails them) and end every session of the account."""
    conn = await connect(database_url)
    try:
        user = await _admin(conn, email)
        async with aiohttp.ClientSession() as http:
            # No other admin acted: the event names the account itself as the one who reset it.
            await MfaClient(http, base_url=mfa_url, key=service_key).reset(user.id, user.id)
        async with conn.transaction():
            await sessions.end_all(conn, user.id)
            await audit.record(conn, user.id, "two_factor_reset", detail=f"by {BY_OPERATOR}; every session ended")
    finally:
        await conn.close()
