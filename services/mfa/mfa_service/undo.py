"""Undoing a reported change for a "This wasn't me" link: profile calls POST /internal/users/{id}/undo.

Profile owns the link, its single use and the profile.change_undone event; mfa only reverses its own
state and says where two-factor stands, so profile can lower its latch from the answer. No mfa event is
emitted (one user action, one event: profile's). The undo is idempotent by state: a second call finds
nothing left to remove and answers undone=false.

Which enrolment an event reported: an authenticator app's `enabled_at` and a code set's `created_at`
are Postgres `now()`, the start of the transaction that enabled (or regenerated) them, and the event's
`occurred_at` is mfa's clock when it wrote the outbox row later in that same transaction. So the
reported enrolment has enabled_at <= occurred_at, give or take the skew between the database's clock
and mfa's (CLOCK_TOLERANCE). A later re-enrolment started after that transaction committed and after a
disable and a new setup with a fresh code (many seconds for a person), so it is later than the tolerance
and survives the undo.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from portal_shared.events import RecoveryCodesRegenerated, SecurityKeyAdded, TotpEnabled, TwoFactorEnabled
from portal_shared.ids import is_uuid

from mfa_service.errors import MalformedInput
from mfa_service.repository import credentials as credentials_repo
from mfa_service.repository import recovery_codes as codes_repo
from mfa_service.repository import totp as totp_repo
from mfa_service.repository.factors import lock_user, two_factor_on
from mfa_service.state import void_codes

log = structlog.get_logger("mfa.undo")

CLOCK_TOLERANCE = timedelta(seconds=5)
KEY_TYPES = frozenset({SecurityKeyAdded.type, TwoFactorEnabled.type})  # with key_id
TOTP_TYPES = frozenset({TotpEnabled.type, TwoFactorEnabled.type})  # without key_id
CODES_TYPE = RecoveryCodesRegenerated.type
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True)
class UndoRequest:
    event_id: str
    type: str
    key_id: uuid.UUID | None
    until: datetime  # the undone event's occurred_at plus CLOCK_TOLERANCE: what it reported is not later

    @classmethod
    def parse(cls, body: dict[str, Any]) -> UndoRequest:
        """The request body, or a 400 naming the first field that is not what the endpoint takes."""
        event_id, type_, key_id, at = (body.get(name) for name in ("event_id", "type", "key_id", "at"))
        if not _text(event_id):
            raise MalformedInput("event_id must be the undone event's id.", field="event_id")
        if not _text(type_):
            raise MalformedInput("type must be the undone event's type.", field="type")
        key: uuid.UUID | None = None
        if key_id is not None:
            if not is_uuid(key_id):
                raise MalformedInput("key_id must be a security key id or null.", field="key_id")
            key = uuid.UUID(key_id)
        elif type_ == SecurityKeyAdded.type:
            raise MalformedInput(f"key_id is required to undo {SecurityKeyAdded.type}.", field="key_id")
        try:
            if not isinstance(at, str) or len(at) > 64:
                raise ValueError("at")
            when = datetime.fromisoformat(at)
            if when.tzinfo is None:
                raise ValueError("no offset")
            # In UTC, so Postgres can take it; the last representable times overflow here: a 400 too.
            until = (when + CLOCK_TOLERANCE).astimezone(UTC)
        except (ValueError, OverflowError):
            raise MalformedInput("at must be an ISO 8601 time with an offset.", field="at") from None
        return cls(event_id, type_, key, until)


def _text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_TEXT and value.isprintable()


@dataclass(frozen=True, slots=True)
class UndoResult:
    undone: bool
    two_factor_enabled: bool
    at: datetime  # when this change was made, on mfa's clock (the clock of the latch's other timestamps)


class UndoService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def undo(self, user_id: str, request: UndoRequest) -> UndoResult:
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_user(conn, user_id)
            undone = await self._reverse(conn, user_id, request)
            enabled = await two_factor_on(conn, user_id)
            if undone and not enabled:
                await void_codes(conn, user_id)  # the removal took the last factor: two-factor is off
            # Taken under the user's lock: a later enable waits for it, so its latch time is later than ours.
            at = datetime.now(UTC)
        log.info("change_undone", user_id=user_id, event_id=request.event_id, type=request.type, undone=undone,
                 two_factor_enabled=enabled)
        return UndoResult(undone, enabled, at)

    async def _reverse(self, conn: asyncpg.Connection, user_id: str, request: UndoRequest) -> bool:
        until = request.until
        if request.key_id is not None and request.type in KEY_TYPES:
            # The key id names the enrolment exactly; the owner check keeps another user's key out of reach.
            return await credentials_repo.delete(conn, request.key_id, user_id) is not None
        if request.key_id is None and request.type in TOTP_TYPES:
            return await totp_repo.delete_enabled_until(conn, user_id, until)
        if request.type == CODES_TYPE:
            return await codes_repo.delete_created_until(conn, user_id, until) > 0
        return False
