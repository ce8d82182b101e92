"""SQL for clients and users (plain asyncpg, `$n` parameters), mapping rows to dataclasses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from profile_service.models import Client, User

Conn = asyncpg.Connection | asyncpg.Pool

_USER_FIELDS = ("id", "email", "name", "role", "title", "mobile", "phone", "password_hash", "two_factor_enabled",
                "failed_attempts", "locked_until", "created_at", "active", "second_factors", "second_factors_epoch",
                "quiet_next_sign_in")


def user_columns(user: str, client: str, prefix: str = "") -> str:
    """The select list for a user row (aliases `user` and `client`), each column named prefix+field."""
    cols = [f"{user}.{f} AS {prefix}{f}" for f in _USER_FIELDS]
    return ", ".join([*cols, f"{client}.id AS {prefix}client_id", f"{client}.name AS {prefix}client_name"])


USER_SELECT = f"SELECT {user_columns('u', 'c')} FROM users u LEFT JOIN clients c ON c.id = u.client_id"  # noqa: S608
_BY_ID = USER_SELECT + " WHERE u.id = $1"
_BY_EMAIL = USER_SELECT + " WHERE lower(u.email) = lower($1)"
_BY_ID_FOR_UPDATE = _BY_ID + " FOR UPDATE OF u"
_LIST = USER_SELECT + """
WHERE ($1::uuid IS NULL OR u.client_id = $1)
  AND ($2::text IS NULL OR u.email ILIKE '%' || $2 || '%' OR u.name ILIKE '%' || $2 || '%')
ORDER BY lower(u.name), lower(u.email)
LIMIT 500
"""
_INSERT = """
INSERT INTO users (id, email, name, role, client_id, title, mobile, phone, password_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
_SET_PASSWORD = "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1"  # noqa: S105
# A password the person chose (change, reset, invitation), as opposed to a re-hash of the same password.
_SET_NEW_PASSWORD = "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1"  # noqa: S105
# Voids a password set after `$2` (an undo of an address change: the attacker may have set it).
_CLEAR_HASH_SET_SINCE = """
UPDATE users SET password_hash = NULL, updated_at = now()
WHERE id = $1 AND password_changed_at >= $2
RETURNING 1
"""
_EMAIL_TAKEN = "SELECT 1 FROM users WHERE lower(email) = lower($1) AND id IS DISTINCT FROM $2"
# Only a newer mfa event may change the projection: events can arrive out of order.
_SET_TWO_FACTOR = """
UPDATE users SET two_factor_enabled = $2, two_factor_changed_at = $3
WHERE id = $1 AND (two_factor_changed_at IS NULL OR two_factor_changed_at <= $3)
"""
# The factor list a sign-in offers (second_factors.offered): stored only while no factor change was seen
# since the sign-in read the account (the epoch it read), cleared (and the epoch moved on) by any change.
_REMEMBER_SECOND_FACTORS = """
UPDATE users SET second_factors = $2 WHERE id = $1 AND second_factors_epoch = $3
"""
_FORGET_SECOND_FACTORS = """
UPDATE users SET second_factors = NULL, second_factors_epoch = second_factors_epoch + 1 WHERE id = $1
"""
_RECORD_EMAIL_CHANGE = """
INSERT INTO email_changes (event_id, user_id, old_email, new_email) VALUES ($1, $2, $3, $4)
"""
# Taken once (the undo marks it), for this user only.
_TAKE_EMAIL_CHANGE = """
UPDATE email_changes SET undone_at = now()
WHERE event_id = $1 AND user_id = $2 AND undone_at IS NULL
RETURNING old_email, new_email, changed_at
"""
_UPDATABLE = ("email", "name", "client_id", "title", "mobile", "phone")

_CLIENT_INSERT = "INSERT INTO clients (id, name) VALUES ($1, $2)"
_CLIENT_BY_ID = "SELECT id, name FROM clients WHERE id = $1"
_CLIENT_BY_NAME = "SELECT id, name FROM clients WHERE name = $1 ORDER BY created_at LIMIT 1"
_CLIENT_LIST = "SELECT id, name FROM clients ORDER BY lower(name), id"


def user_from_row(row: asyncpg.Record | None, prefix: str = "") -> User | None:
    if row is None or row[prefix + "id"] is None:
        return None
    client_id = row[prefix + "client_id"]
    client = Client(str(client_id), row[prefix + "client_name"]) if client_id else None
    values = {f: row[prefix + f] for f in _USER_FIELDS}
    return User(**{**values, "id": str(values["id"])}, client=client)


async def get(conn: Conn, user_id: str, *, for_update: bool = False) -> User | None:
    return user_from_row(await conn.fetchrow(_BY_ID_FOR_UPDATE if for_update else _BY_ID, uuid.UUID(user_id)))


async def get_by_email(conn: Conn, email: str) -> User | None:
    if "\x00" in email or not email.isprintable():  # Postgres text cannot hold NUL; no stored address has one
        return None
    return user_from_row(await conn.fetchrow(_BY_EMAIL, email))


async def list_users(conn: Conn, *, client_id: str | None, query: str | None) -> list[User]:
    rows = await conn.fetch(_LIST, uuid.UUID(client_id) if client_id else None, query or None)
    return [u for u in map(user_from_row, rows) if u is not None]


async def insert(conn: Conn, *, email: str, name: str, role: str, client_id: str | None = None,
                 title: str | None = None, mobile: str | None = None, phone: str | None = None,
                 password_hash: str | None = None) -> str:
    user_id = uuid.uuid4()
    await conn.execute(_INSERT, user_id, email, name, role, uuid.UUID(client_id) if client_id else None,
                       title, mobile, phone, password_hash)
    return str(user_id)


async def email_taken(conn: Conn, email: str, *, except_id: str | None = None) -> bool:
    return bool(await conn.fetchval(_EMAIL_TAKEN, email, uuid.UUID(except_id) if except_id else None))


async def update_fields(conn: Conn, user_id: str, fields: dict[str, Any]) -> None:
    """Set the given columns (names checked against a fixed list, values as parameters)."""
    names = [name for name in fields if name in _UPDATABLE]
    if not names:
        return
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    values = [uuid.UUID(fields[n]) if n == "client_id" else fields[n] for n in names]
    await conn.execute(f"UPDATE users SET {assignments}, updated_at = now() WHERE id = $1",  # noqa: S608
                       uuid.UUID(user_id), *values)


async def set_password_hash(conn: Conn, user_id: str, password_hash: str) -> None:
    await conn.execute(_SET_PASSWORD, uuid.UUID(user_id), password_hash)


async def set_new_password(conn: Conn, user_id: str, password_hash: str) -> None:
    await conn.execute(_SET_NEW_PASSWORD, uuid.UUID(user_id), password_hash)


async def clear_password_set_since(conn: Conn, user_id: str, since: datetime) -> bool:
    """Remove the password when it was set at or after `since`; True when it was."""
    return bool(await conn.fetchval(_CLEAR_HASH_SET_SINCE, uuid.UUID(user_id), since))


async def set_two_factor(conn: Conn, user_id: str, enabled: bool, at: datetime) -> None:
    await conn.execute(_SET_TWO_FACTOR, uuid.UUID(user_id), enabled, at)


async def remember_second_factors(conn: Conn, user_id: str, factors: list[str], epoch: int) -> None:
    await conn.execute(_REMEMBER_SECOND_FACTORS, uuid.UUID(user_id), factors, epoch)


async def forget_second_factors(conn: Conn, user_id: str) -> None:
    await conn.execute(_FORGET_SECOND_FACTORS, uuid.UUID(user_id))


async def record_email_change(conn: Conn, event_id: str, user_id: str, old_email: str, new_email: str) -> None:
    await conn.execute(_RECORD_EMAIL_CHANGE, uuid.UUID(event_id), uuid.UUID(user_id), old_email, new_email)


async def take_email_change(conn: Conn, event_id: str, user_id: str) -> asyncpg.Record | None:
    """The not-yet-undone address change `event_id` of `user_id` (old_email, new_email, changed_at), marked undone."""
    try:
        key = uuid.UUID(event_id)
    except ValueError:
        return None
    return await conn.fetchrow(_TAKE_EMAIL_CHANGE, key, uuid.UUID(user_id))


async def insert_client(conn: Conn, name: str) -> Client:
    client_id = uuid.uuid4()
    await conn.execute(_CLIENT_INSERT, client_id, name)
    return Client(str(client_id), name)


async def get_client(conn: Conn, client_id: str) -> Client | None:
    row = await conn.fetchrow(_CLIENT_BY_ID, uuid.UUID(client_id))
    return Client(str(row["id"]), row["name"]) if row else None


async def get_client_by_name(conn: Conn, name: str) -> Client | None:
    row = await conn.fetchrow(_CLIENT_BY_NAME, name)
    return Client(str(row["id"]), row["name"]) if row else None


async def list_clients(conn: Conn) -> list[Client]:
    return [Client(str(r["id"]), r["name"]) for r in await conn.fetch(_CLIENT_LIST)]


async def lock_for_seeding(conn: asyncpg.Connection) -> None:
    """Two seeders at once (several replicas starting) run one after the other, to the transaction's end."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('profile-seed-demo'))")
