""""This wasn't me": a security email's link undoes what that email reported, then locks everyone out.

The link (signed by the notifier, docs/internal-api.md "Not-me links") names the event: `jti` is its id,
`evt` its type, `at` when it happened and `key` the key it named. The undo removes a factor announced as
added, voids regenerated codes (both in mfa), restores a changed sign-in address (voiding a password set
since), ends an administrator's viewing session, revokes a linked SSO identity; then every session of the
account ends, every mailed link is void and a fresh reset link goes to the (restored) address. Each link
works once: a second use does nothing more. An undo emits profile.change_undone besides the reset request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from portal_shared import tokens
from portal_shared.clock import iso
from portal_shared.events import ChangeUndone, UserUpdated
from portal_shared.ids import is_uuid
from portal_shared.outbox import enqueue

from profile_service import activity, sessions
from profile_service.config import SERVICE
from profile_service.context import Context
from profile_service.errors import Conflict, InvalidLink, NotFound
from profile_service.models import Session, User
from profile_service.recovery import issue_reset
from profile_service.repository import activity as activity_repo
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import sso as sso_repo
from profile_service.repository import tokens as tokens_repo
from profile_service.repository import users as users_repo

# mfa's changes that an undo reverses in mfa (POST /internal/users/{id}/undo).
MFA_UNDOABLE = frozenset({"mfa.two_factor_enabled", "mfa.totp_enabled", "mfa.security_key_added",
                          "mfa.recovery_codes_regenerated"})
EMAIL_CHANGED = "profile.email_changed"
IMPERSONATION_STARTED = "profile.impersonation_started"
SSO_LINKED = "profile.sso_linked"


@dataclass(frozen=True, slots=True)
class Link:
    user_id: str
    event_id: str
    event_type: str | None
    key_id: str | None
    at: str | None


@dataclass(frozen=True, slots=True)
class UndoResult:
    undone_type: str | None  # what was undone (None: nothing beyond ending sessions, or a second use)
    two_factor_disabled: bool


NOTHING = UndoResult(None, False)


def read_link(key: str, token: Any) -> Link:
    try:
        claims = tokens.verify(key, tokens.NOT_ME, token if isinstance(token, str) else "")
    except tokens.InvalidToken:
        raise InvalidLink() from None
    user_id, jti = claims.get("sub"), claims.get("jti")
    if not isinstance(user_id, str) or not isinstance(jti, str) or not jti:
        raise InvalidLink()

    def text(name: str) -> str | None:
        value = claims.get(name)
        return value if isinstance(value, str) and value else None

    return Link(user_id, jti, text("evt"), text("key"), text("at"))


async def not_me(ctx: Context, token: Any, *, ip: str) -> UndoResult:
    link = read_link(ctx.settings.service_auth_key, token)
    user = await users_repo.get(ctx.pool, link.user_id) if is_uuid(link.user_id) else None
    if user is None:
        raise InvalidLink()
    async with ctx.pool.acquire() as conn, conn.transaction():
        # The user's row lock serialises two clicks of one link (and of links of one account), so the
        # undo in mfa and the single use of the link below are decided by one of them only.
        user = await users_repo.get(conn, user.id, for_update=True)
        if user is None or await tokens_repo.not_me_spent(conn, link.event_id):
            return NOTHING
        undone, two_factor_off = await _undo(conn, ctx, user, link)
        if not await tokens_repo.spend_not_me(conn, link.event_id, user.id):
            return NOTHING
        await tokens_repo.void_all(conn, user.id)
        await sessions.end_all(conn, user.id)
        restored = await users_repo.get(conn, user.id)
        assert restored is not None
        await issue_reset(conn, ctx, restored)
        if undone:
            await enqueue(conn, ChangeUndone(user_id=user.id, undone_event_id=link.event_id,
                                             undone_type=link.event_type or "",
                                             two_factor_disabled=two_factor_off), source=SERVICE)
        what = f"undid {link.event_type}; " if undone else ""
        await audit.record(conn, user.id, "not_me", ip=ip,
                           detail=f"{what}all sessions ended; reset link emailed")
    return UndoResult(link.event_type if undone else None, two_factor_off)


# The changes a user can undo in place from the Security tab's activity: what a "This wasn't me" link of
# that event's email undoes. One list, the feed's (it marks the rows); a unit test checks it is exactly
# what _undo below reverses.
UNDOABLE = activity.UNDOABLE


async def undo_in_place(ctx: Context, session: Session, event_id: str, *, ip: str) -> UndoResult:
    """Undo one change of the signed-in account from its activity feed, as its email's "This wasn't me" link
    would — the link works once, and so does this (they share the event's single use) — then end every
    other session of the account. The caller re-authenticated (a stolen session alone cannot undo a
    factor its owner just added); unlike the emailed link, the current session stays signed in."""
    user = session.user
    item = await activity_repo.event_item(ctx.pool, user.id, event_id) if is_uuid(event_id) else None
    if item is None or item["type"] not in UNDOABLE:
        raise NotFound("Nothing to undo here.")
    key_id = item["detail"].get("key_id")
    link = Link(user.id, event_id, item["type"], key_id if isinstance(key_id, str) else None, iso(item["at"]))
    async with ctx.pool.acquire() as conn, conn.transaction():
        locked = await users_repo.get(conn, user.id, for_update=True)
        if locked is None or await tokens_repo.not_me_spent(conn, event_id):
            raise Conflict("This change was undone already.")
        undone, two_factor_off = await _undo(conn, ctx, locked, link)
        if not await tokens_repo.spend_not_me(conn, event_id, user.id):
            raise Conflict("This change was undone already.")
        await sessions_repo.delete_all(conn, user.id, except_hash=session.id_hash)
        await sessions_repo.delete_viewing(conn, user.id)
        if undone:
            await enqueue(conn, ChangeUndone(user_id=user.id, undone_event_id=event_id, undone_type=item["type"],
                                             two_factor_disabled=two_factor_off), source=SERVICE)
        await audit.record(conn, user.id, "undone_in_place", ip=ip,
                           detail=f"{'undid' if undone else 'could not undo'} {item['type']}; other sessions ended")
    return UndoResult(item["type"] if undone else None, two_factor_off)


async def _undo(conn: asyncpg.Connection, ctx: Context, user: User, link: Link) -> tuple[bool, bool]:
    """Reverse the change the link's event reported; (undone, two-factor turned off)."""
    if link.event_type in MFA_UNDOABLE:
        return await _undo_in_mfa(conn, ctx, user, link)
    if link.event_type == EMAIL_CHANGED:
        return await _restore_address(conn, user, link.event_id), False
    if link.event_type == IMPERSONATION_STARTED:
        return await sessions_repo.delete_viewing(conn, user.id) > 0, False
    if link.event_type == SSO_LINKED:  # that provider identity never signs in to (or links) this portal again
        return await sso_repo.revoke_by_event(conn, user.id, link.event_id), False
    return False, False


async def _undo_in_mfa(conn: asyncpg.Connection, ctx: Context, user: User, link: Link) -> tuple[bool, bool]:
    # Without `at` only a named key can be matched safely; an app or codes could be a later enrolment.
    if link.at is None and link.key_id is None:
        return False, False
    at = link.at or datetime.now().astimezone().isoformat()
    result = await ctx.mfa.undo(user.id, event_id=link.event_id, event_type=link.event_type or "",
                                key_id=link.key_id, at=at)
    await users_repo.forget_second_factors(conn, user.id)  # mfa sends no event for an undo
    if not result.two_factor_enabled:
        # mfa removed the last factor: lower the latch now, ordered like mfa's own events (docs/internal-api.md).
        await users_repo.set_two_factor(conn, user.id, False, result.at)
    return result.undone, result.undone and not result.two_factor_enabled


async def _restore_address(conn: asyncpg.Connection, user: User, event_id: str) -> bool:
    """Put the old sign-in address back, unless the address moved on since or another account holds it."""
    change = await users_repo.take_email_change(conn, event_id, user.id)
    if change is None or user.email.lower() != change["new_email"].lower():
        return False
    if await users_repo.email_taken(conn, change["old_email"], except_id=user.id):
        return False
    await users_repo.update_fields(conn, user.id, {"email": change["old_email"]})
    # Whoever moved the address may have set a password through it: that password is void too; the reset
    # link below goes to the restored address.
    await users_repo.clear_password_set_since(conn, user.id, change["changed_at"])
    await enqueue(conn, UserUpdated(user_id=user.id, email=change["old_email"], name=user.name), source=SERVICE)
    return True
