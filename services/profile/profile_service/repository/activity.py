"""SQL of the security activity feed (migration 0007)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool
NEW_DEVICE_QUIET_HOURS = 24

_INSERT = """
INSERT INTO activity (user_id, at, type, ip, user_agent, detail, event_id)
SELECT $1, coalesce($2, now()), $3, $4, $5, $6::text::jsonb, $7
WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)
ON CONFLICT (event_id) DO NOTHING
"""
# Newest first; the cursor is the (at, id) of the last item of the previous page.
_PAGE = """
SELECT id, at, type, ip, user_agent, detail::text AS detail, event_id::text AS event_id FROM activity
WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (at, id) < ($2, $3))
ORDER BY at DESC, id DESC
LIMIT $4
"""
# A completed sign-in's item, and (when it is from a new device) whether a new-device sign-in from this
# address and browser was recorded in the quiet hours before it: one round trip inside the sign-in's
# transaction, which holds the account's device lock. The CTE reads the table as it was before the INSERT.
_RECORD_SIGN_IN = """
WITH reported AS (
    SELECT $5 AND EXISTS (
        SELECT 1 FROM activity
        WHERE user_id = $1 AND type = 'sign_in' AND ip = $2 AND user_agent = $3
          AND detail @> '{"new_device": true}' AND at > now() - make_interval(hours => $6)
    ) AS recently
)
INSERT INTO activity (user_id, type, ip, user_agent, detail)
VALUES ($1, 'sign_in', $2, $3, $4::text::jsonb)
RETURNING (SELECT recently FROM reported)
"""


async def record(conn: Conn, user_id: str, type_: str, *, ip: str, user_agent: str, detail: dict[str, Any],
                 at: datetime | None = None, event_id: str | None = None) -> None:
    """One activity item; an event's item is written once however often the event is delivered. An event
    about an account that no longer exists writes nothing."""
    await conn.execute(_INSERT, uuid.UUID(user_id), at, type_, ip, user_agent, json.dumps(detail),
                       uuid.UUID(event_id) if event_id else None)


async def page(conn: Conn, user_id: str, *, before: tuple[datetime, int] | None, limit: int) -> list[asyncpg.Record]:
    at, row_id = before if before else (None, 0)
    return list(await conn.fetch(_PAGE, uuid.UUID(user_id), at, row_id, limit))


async def record_sign_in(conn: Conn, user_id: str, *, ip: str, user_agent: str, detail: dict[str, Any],
                         new_device: bool) -> bool:
    """The sign-in's activity item; True when it is from a new device and this address and browser already
    made a new-device sign-in in the quiet hours before it (a cookie-less browser — a private window, a
    script — is "new" each time: it is mailed at most once a day)."""
    return bool(await conn.fetchval(_RECORD_SIGN_IN, uuid.UUID(user_id), ip, user_agent, json.dumps(detail),
                                    new_device, NEW_DEVICE_QUIET_HOURS))


async def expect_next_sign_in(conn: Conn, user_id: str) -> None:
    await conn.execute("UPDATE users SET quiet_next_sign_in = true WHERE id = $1", uuid.UUID(user_id))


async def take_expected_sign_in(conn: Conn, user_id: str) -> bool:
    """True (once) when this sign-in was expected: the first after a password set through an emailed link."""
    return await conn.fetchval("UPDATE users SET quiet_next_sign_in = false WHERE id = $1 AND quiet_next_sign_in "
                               "RETURNING true", uuid.UUID(user_id)) is True


async def event_item(conn: Conn, user_id: str, event_id: str) -> dict[str, Any] | None:
    """The account's item of event `event_id` (type, at, detail), or None."""
    row = await conn.fetchrow("SELECT type, at, detail::text AS detail FROM activity "
                              "WHERE user_id = $1 AND event_id = $2", uuid.UUID(user_id), uuid.UUID(event_id))
    return {"type": row["type"], "at": row["at"], "detail": json.loads(row["detail"])} if row else None


async def undone_events(conn: Conn, event_ids: list[str]) -> set[str]:
    """Which of these events were undone already (their not-me use is recorded)."""
    rows = await conn.fetch("SELECT jti FROM not_me_uses WHERE jti = ANY($1::text[])", event_ids)
    return {r["jti"] for r in rows}
