"""The account's security activity (GET /api/auth/activity) and the "new sign-in" notice.

Items come from two places: sign-in writes `sign_in` (with how) and, inside the throttle's failure
statement, `sign_in_failed`; the event consumer writes one item per security event of the account, with
the actor (address, browser) the event carries. The feed is newest first with a keyset cursor; a burst of
failed attempts from one browser reads as one item with a count.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from datetime import datetime
from typing import Any

import asyncpg
from portal_shared.consumer import PermanentError
from portal_shared.events import (
    SECRET_DATA_FIELDS,
    Envelope,
    NewDeviceSignIn,
    PasswordResetRequested,
    UserCreated,
    UserInvited,
    UserUpdated,
)
from portal_shared.ids import is_uuid
from portal_shared.outbox import enqueue

from profile_service.config import SERVICE
from profile_service.errors import ValidationFailed
from profile_service.models import User
from profile_service.repository import activity as activity_repo
from profile_service.views import iso

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
# The event types whose change the owner can undo in place (undo.py decides how, and uses this list).
UNDOABLE = frozenset({"mfa.two_factor_enabled", "mfa.totp_enabled", "mfa.security_key_added",
                      "mfa.recovery_codes_regenerated", "profile.email_changed", "profile.impersonation_started",
                      "profile.sso_linked"})
SIGN_IN_FAILED = "sign_in_failed"  # (a completed sign-in's item: repository/activity.record_sign_in)
# Events that are not activity of the account's security: its creation and invitation (before the owner
# has it), profile edits, a reset *request* (anyone can ask; nothing changed until the link is used, which
# is profile.password_changed), and the new-device notice (the sign-in it reports is an item already).
NOT_ACTIVITY = frozenset({UserCreated.type, UserUpdated.type, UserInvited.type, PasswordResetRequested.type,
                          NewDeviceSignIn.type})
SECOND_FACTORS = {"totp": "totp", "recovery code": "recovery_code", "security key": "webauthn"}


async def on_event(conn: asyncpg.Connection, envelope: Envelope) -> None:
    """The consumer's handler: one item per event (idempotent by event id)."""
    data = {k: v for k, v in _data(envelope).items() if k != "user_id" and k not in SECRET_DATA_FIELDS}
    if not is_uuid(envelope.event.user_id) or not is_uuid(envelope.id):
        raise PermanentError(f"{envelope.type} {envelope.id[:80]!r}: user or event id is not a UUID")
    try:
        at = datetime.fromisoformat(envelope.occurred_at.replace("Z", "+00:00"))
        await activity_repo.record(conn, envelope.event.user_id, envelope.type, at=at, event_id=envelope.id,
                                   ip=envelope.actor.ip if envelope.actor else "",
                                   user_agent=envelope.actor.user_agent if envelope.actor else "", detail=data)
    except ValueError as exc:  # a malformed timestamp will never get better
        raise PermanentError(f"{envelope.type} {envelope.id}: {exc}") from None


def _data(envelope: Envelope) -> dict[str, Any]:
    return dataclasses.asdict(envelope.event)


async def signed_in(conn: asyncpg.Connection, user: User, *, session_id: str, method: str,
                    second_factor: str | None, known_device: bool, ip: str, user_agent: str) -> None:
    """Record a completed sign-in; from a browser that is not a known device, email the owner about it —
    unless it is the sign-in that follows setting a password through an emailed link (invitation, reset),
    or this address and browser were already reported today (a browser that keeps no cookies)."""
    user_id = user.id
    # The account row read at the start of this sign-in says whether one is expected; only then is the
    # mark taken (once: a parallel sign-in may have taken it since). A mark set since belongs to a later
    # sign-in than this one, which began before the link was used.
    expected = user.quiet_next_sign_in and await activity_repo.take_expected_sign_in(conn, user_id)
    new_device = not known_device and not expected
    detail = {"method": method, "second_factor": SECOND_FACTORS.get(second_factor or "", second_factor),
              "new_device": new_device}
    reported = await activity_repo.record_sign_in(conn, user_id, ip=ip, user_agent=user_agent, detail=detail,
                                                  new_device=new_device)
    if new_device and not reported:
        await enqueue(conn, NewDeviceSignIn(user_id=user_id, session_id=session_id, ip=ip, user_agent=user_agent),
                      source=SERVICE)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ValidationFailed({"limit": [f"Use a whole number from 1 to {MAX_LIMIT}."]})
    return int(value)


def _cursor(value: str | None) -> tuple[datetime, int] | None:
    if value is None:
        return None
    try:
        at, _, row_id = base64.urlsafe_b64decode(value.encode() + b"==").decode().partition("|")
        return datetime.fromisoformat(at), int(row_id)
    except (binascii.Error, UnicodeError, ValueError):
        raise ValidationFailed({"cursor": ["Use the next_cursor of the previous page."]}) from None


def _next_cursor(row: asyncpg.Record) -> str:
    return base64.urlsafe_b64encode(f"{row['at'].isoformat()}|{row['id']}".encode()).rstrip(b"=").decode()


async def feed(pool: asyncpg.Pool, user_id: str, *, cursor: str | None, limit: str | None) -> dict[str, Any]:
    size, before = _limit(limit), _cursor(cursor)
    rows = await activity_repo.page(pool, user_id, before=before, limit=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    undone = await activity_repo.undone_events(pool, [r["event_id"] for r in rows if r["event_id"]])
    return {"items": _collapsed(rows, undone), "next_cursor": _next_cursor(rows[-1]) if more else None}


def _collapsed(rows: list[asyncpg.Record], undone: set[str]) -> list[dict[str, Any]]:
    """Consecutive failed attempts from one address and browser read as one item: the newest, with the
    burst's `count`, `first_at` and `last_at`."""
    items: list[dict[str, Any]] = []
    for row in rows:
        # Beyond the contract's fields: `id` (the event's, when the item reports one) and `undoable` (a
        # change its owner can still undo in place: POST /api/auth/activity/{id}/undo).
        item = {"at": iso(row["at"]), "type": row["type"], "ip": row["ip"], "user_agent": row["user_agent"],
                "detail": json.loads(row["detail"]), "id": row["event_id"],
                "undoable": row["event_id"] is not None and row["type"] in UNDOABLE and row["event_id"] not in undone}
        last = items[-1] if items else None
        if (last is not None and item["type"] == SIGN_IN_FAILED == last["type"]
                and (item["ip"], item["user_agent"]) == (last["ip"], last["user_agent"])):
            last["detail"]["count"] = last["detail"].get("count", 1) + 1
            last["detail"].setdefault("last_at", last["at"])
            last["detail"]["first_at"] = item["at"]  # rows come newest first: this one is earlier
            continue
        items.append(item)
    return items
