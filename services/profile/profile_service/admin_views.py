"""The admin console's JSON shapes (the contract's MSP admin section), built from admin_repo's rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from profile_service.admin_paging import Page, encode_cursor
from profile_service.models import AuditEntry
from profile_service.repository.admin import AuditRow, ClientRow, UserRow
from profile_service.views import admin_user, iso

T = TypeVar("T")


def page_json(page: Page[T], kind: str, item: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """`{items, next_cursor}`: next_cursor is null on the last page."""
    after = page.next_after
    if after is not None and kind == "audit":  # (at, id): the instant as text, to the microsecond
        after = (after[0].isoformat(), after[1])
    return {"items": [item(i) for i in page.items],
            "next_cursor": encode_cursor(kind, after) if after is not None else None}


def client_row(row: ClientRow) -> dict[str, Any]:
    return {**row.client.to_json(), "user_count": row.user_count, "two_factor_count": row.two_factor_count}


def user_row(row: UserRow) -> dict[str, Any]:
    """The user, plus whether they may sign in, when they last did, and where their invitation stands."""
    return {**admin_user(row.user), "active": row.user.active, "last_sign_in_at": iso(row.last_sign_in_at),
            "invitation": {"state": row.invitation.state, "expires_at": iso(row.invitation.expires_at)}}


def audit_entry(entry: AuditEntry) -> dict[str, Any]:
    return {"at": iso(entry.at), "type": entry.type, "ip": entry.ip, "detail": entry.detail}


def audit_row(row: AuditRow) -> dict[str, Any]:
    return audit_entry(row.entry)
