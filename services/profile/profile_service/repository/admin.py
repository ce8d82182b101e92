"""SQL of the admin console: keyset pages of clients, users and audit entries, a client's counts, a user's
last sign-in and invitation, and the active flag.

Each statement is assembled from constant fragments (never from input) so that every variant keeps a
plain index condition: a `$1 IS NULL OR ...` guard would stop a generic plan from using the keyset index.
The orders and their indexes are in migrations/0005_admin_console.sql.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from profile_service.models import AuditEntry, Client, User
from profile_service.repository.users import user_columns, user_from_row

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class ClientRow:
    client: Client
    user_count: int
    two_factor_count: int
    sort_key: tuple[str, str]  # (lower(name), id): where the next page starts


@dataclass(frozen=True, slots=True)
class Invitation:
    state: str  # pending, expired or accepted
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserRow:
    user: User
    last_sign_in_at: datetime | None
    invitation: Invitation
    sort_key: tuple[str, str]  # (lower(name), lower(email))


@dataclass(frozen=True, slots=True)
class AuditRow:
    entry: AuditEntry
    sort_key: tuple[datetime, int]  # (at, id)


def like_pattern(text: str) -> str:
    """`text` matched literally anywhere (ILIKE): its own % _ and \\ are not wildcards."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_COUNTS = """
SELECT count(*) AS user_count, count(*) FILTER (WHERE two_factor_enabled) AS two_factor_count
FROM users WHERE client_id = $1
"""


def _clients_sql(*, after: bool, query: bool) -> str:
    where, n = [], 1
    if after:
        where.append("(lower(name), id) > ($1, $2)")
        n = 3
    if query:
        where.append(f"name ILIKE ${n}")
        n += 1
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    return f"""
SELECT c.id, c.name, c.sort_name, n.user_count, n.two_factor_count
FROM (SELECT id, name, lower(name) AS sort_name FROM clients {condition}
      ORDER BY lower(name), id LIMIT ${n}) c
CROSS JOIN LATERAL (SELECT count(*) AS user_count, count(*) FILTER (WHERE u.two_factor_enabled) AS two_factor_count
                    FROM users u WHERE u.client_id = c.id) n
ORDER BY c.sort_name, c.id
"""  # noqa: S608 (constant fragments only)


async def client_counts(conn: Conn, client_id: str) -> tuple[int, int]:
    row = await conn.fetchrow(_COUNTS, uuid.UUID(client_id))
    return int(row["user_count"]), int(row["two_factor_count"])


async def clients_page(conn: Conn, *, after: tuple[str, str] | None, query: str | None,
                       limit: int) -> list[ClientRow]:
    """Up to `limit` clients after the sort key `after`, name containing `query` (any case)."""
    args: list[object] = [after[0], uuid.UUID(after[1])] if after else []
    if query:
        args.append(like_pattern(query))
    rows = await conn.fetch(_clients_sql(after=after is not None, query=bool(query)), *args, limit)
    return [ClientRow(Client(str(r["id"]), r["name"]), int(r["user_count"]), int(r["two_factor_count"]),
                      (r["sort_name"], str(r["id"]))) for r in rows]


_STATUS_JOINS = """
LEFT JOIN clients c ON c.id = u.client_id
LEFT JOIN LATERAL (SELECT a.at FROM audit_log a WHERE a.user_id = u.id AND a.type = 'signed_in'
                   ORDER BY a.at DESC, a.id DESC LIMIT 1) s ON true
LEFT JOIN LATERAL (SELECT t.expires_at, t.used_at IS NULL AND t.voided_at IS NULL AND t.expires_at > now() AS live
                   FROM password_tokens t WHERE t.user_id = u.id AND t.purpose = 'invite'
                   ORDER BY t.created_at DESC LIMIT 1) t ON true
"""
_STATUS_COLUMNS = f"""{user_columns('u', 'c')}, lower(u.name) AS sort_name, lower(u.email) AS sort_email,
       s.at AS last_sign_in_at, t.expires_at AS invite_expires_at, coalesce(t.live, false) AS invite_live"""
_USER_STATUS = f"SELECT {_STATUS_COLUMNS} FROM users u {_STATUS_JOINS} WHERE u.id = $1"  # noqa: S608


def _users_sql(*, client: bool, after: bool, query: bool) -> str:
    where, n = [], 1
    if client:
        where.append("client_id = $1")
        n = 2
    if after:
        where.append(f"(lower(name), lower(email)) > (${n}, ${n + 1})")
        n += 2
    if query:
        where.append(f"(email ILIKE ${n} OR name ILIKE ${n})")
        n += 1
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    return f"""
SELECT {_STATUS_COLUMNS}
FROM (SELECT * FROM users {condition} ORDER BY lower(name), lower(email) LIMIT ${n}) u
{_STATUS_JOINS}
ORDER BY sort_name, sort_email
"""  # noqa: S608 (constant fragments only)


def _user_row(row: asyncpg.Record) -> UserRow:
    user = user_from_row(row)
    assert user is not None
    if user.password_hash is not None:
        invitation = Invitation("accepted", row["invite_expires_at"])
    else:  # no password yet: the newest invitation link is usable, or it is not (expired, voided, used)
        invitation = Invitation("pending" if row["invite_live"] else "expired", row["invite_expires_at"])
    return UserRow(user, row["last_sign_in_at"], invitation, (row["sort_name"], row["sort_email"]))


async def user_status(conn: Conn, user_id: str) -> UserRow | None:
    row = await conn.fetchrow(_USER_STATUS, uuid.UUID(user_id))
    return _user_row(row) if row else None


async def users_page(conn: Conn, *, client_id: str | None, after: tuple[str, str] | None, query: str | None,
                     limit: int) -> list[UserRow]:
    args: list[object] = [uuid.UUID(client_id)] if client_id else []
    if after:
        args.extend(after)
    if query:
        args.append(like_pattern(query))
    sql = _users_sql(client=client_id is not None, after=after is not None, query=bool(query))
    return [_user_row(r) for r in await conn.fetch(sql, *args, limit)]


def _audit_sql(*, type_: bool, after: bool) -> str:
    where, n = ["user_id = $1"], 2
    if type_:
        where.append(f"type = ${n}")
        n += 1
    if after:
        where.append(f"(at, id) < (${n}, ${n + 1})")
        n += 2
    return (f"SELECT id, at, type, ip, detail FROM audit_log WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY at DESC, id DESC LIMIT ${n}")


async def audit_page(conn: Conn, user_id: str, *, type_: str | None, after: tuple[datetime, int] | None,
                     limit: int) -> list[AuditRow]:
    """A user's audit entries, newest first, of one type when `type_` is given."""
    args: list[object] = [uuid.UUID(user_id)]
    if type_:
        args.append(type_)
    if after:
        args.extend(after)
    rows = await conn.fetch(_audit_sql(type_=bool(type_), after=after is not None), *args, limit)
    return [AuditRow(AuditEntry(r["at"], r["type"], r["ip"], r["detail"]), (r["at"], int(r["id"]))) for r in rows]


_SET_ACTIVE = """
UPDATE users SET active = $2, updated_at = now() WHERE id = $1 AND active IS DISTINCT FROM $2 RETURNING 1
"""


async def set_active(conn: Conn, user_id: str, active: bool) -> bool:
    """Flip the account's active flag; False when it already had that value."""
    return bool(await conn.fetchval(_SET_ACTIVE, uuid.UUID(user_id), active))
