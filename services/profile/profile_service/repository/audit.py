"""The per-user audit log of security events (sign-ins, failures, password and profile changes, impersonation)."""

from __future__ import annotations

import uuid

import asyncpg

from profile_service.models import AuditEntry

MAX_DETAIL = 1000  # characters of an entry's detail that are kept
_INSERT = "INSERT INTO audit_log (user_id, type, ip, detail) VALUES ($1, $2, $3, $4)"
# The first step of a sign-in waiting for its second factor is audited as one of these.
PASSWORD_ACCEPTED, SSO_ACCEPTED = "password_accepted", "sso_accepted"
_LIST = "SELECT at, type, ip, detail FROM audit_log WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2"


async def record(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, type_: str, *, ip: str = "",
                 detail: str = "") -> None:
    await conn.execute(_INSERT, uuid.UUID(user_id), type_, ip, detail[:MAX_DETAIL])


async def entries(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, *, limit: int = 500) -> list[AuditEntry]:
    return [AuditEntry(r["at"], r["type"], r["ip"], r["detail"])
            for r in await conn.fetch(_LIST, uuid.UUID(user_id), limit)]


async def recent_count(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, type_: str, *,
                       window_seconds: int) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM audit_log WHERE user_id = $1 AND type = $2 AND at > now() - make_interval(secs => $3)",
        uuid.UUID(user_id), type_, window_seconds))
