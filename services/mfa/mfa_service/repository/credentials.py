"""SQL for WebAuthn credentials (security keys and passkeys)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Credential:
    id: uuid.UUID
    user_id: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    aaguid: str
    backed_up: bool
    passkey: bool
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewCredential:
    user_id: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: list[str]
    aaguid: str
    backed_up: bool
    passkey: bool
    name: str


INSERT = """
INSERT INTO webauthn_credentials (id, user_id, credential_id, public_key, sign_count, transports, aaguid,
                                  backed_up, passkey, name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (credential_id) DO NOTHING
RETURNING id, user_id, credential_id, public_key, sign_count, transports, aaguid, backed_up, passkey, name,
          created_at, last_used_at
"""
LIST_FOR_USER = """
SELECT id, user_id, credential_id, public_key, sign_count, transports, aaguid, backed_up, passkey, name,
       created_at, last_used_at
FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id
"""
BY_CREDENTIAL_ID = """
SELECT id, user_id, credential_id, public_key, sign_count, transports, aaguid, backed_up, passkey, name,
       created_at, last_used_at
FROM webauthn_credentials WHERE credential_id = $1
"""
# The name before the change comes back too (`old_name`): the rename's event reports both.
RENAME = """
UPDATE webauthn_credentials c SET name = $3
FROM (SELECT id, name FROM webauthn_credentials WHERE id = $1 AND user_id = $2 FOR UPDATE) old
WHERE c.id = old.id
RETURNING c.id, c.user_id, c.credential_id, c.public_key, c.sign_count, c.transports, c.aaguid, c.backed_up,
          c.passkey, c.name, c.created_at, c.last_used_at, old.name AS old_name
"""
DELETE = """
DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2
RETURNING id, user_id, credential_id, public_key, sign_count, transports, aaguid, backed_up, passkey, name,
          created_at, last_used_at
"""
DELETE_ALL = "DELETE FROM webauthn_credentials WHERE user_id = $1"
# Persist the authenticator's counter only if no concurrent assertion moved it meanwhile
# (WebAuthn L2 §6.1.1: a counter that does not grow may mean a cloned authenticator). It also answers
# the owner's unused recovery codes, which sign-in reports, in the same round trip.
RECORD_USE = """
UPDATE webauthn_credentials SET sign_count = $3, last_used_at = now(), backed_up = $4
WHERE id = $1 AND sign_count = $2
RETURNING (SELECT count(*) FROM recovery_codes r WHERE r.user_id = webauthn_credentials.user_id AND r.used_at IS NULL)
"""


def _credential(record: asyncpg.Record) -> Credential:
    return Credential(
        id=record["id"], user_id=record["user_id"], credential_id=bytes(record["credential_id"]),
        public_key=bytes(record["public_key"]), sign_count=record["sign_count"],
        transports=list(record["transports"]), aaguid=record["aaguid"], backed_up=record["backed_up"],
        passkey=record["passkey"], name=record["name"], created_at=record["created_at"],
        last_used_at=record["last_used_at"],
    )


async def insert(conn: asyncpg.Connection, new: NewCredential) -> Credential | None:
    """The stored credential, or None when that credential id is registered already."""
    record = await conn.fetchrow(INSERT, uuid.uuid4(), new.user_id, new.credential_id, new.public_key,
                                 new.sign_count, new.transports, new.aaguid, new.backed_up, new.passkey, new.name)
    return _credential(record) if record else None


async def list_for_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> list[Credential]:
    return [_credential(r) for r in await conn.fetch(LIST_FOR_USER, user_id)]


async def by_credential_id(conn: asyncpg.Connection | asyncpg.Pool, credential_id: bytes) -> Credential | None:
    record = await conn.fetchrow(BY_CREDENTIAL_ID, credential_id)
    return _credential(record) if record else None


async def rename(conn: asyncpg.Connection | asyncpg.Pool, key_id: uuid.UUID, user_id: str,
                 name: str) -> tuple[Credential, str] | None:
    """The renamed key and its previous name, or None when the user has no such key."""
    record = await conn.fetchrow(RENAME, key_id, user_id, name)
    return (_credential(record), record["old_name"]) if record else None


async def delete(conn: asyncpg.Connection, key_id: uuid.UUID, user_id: str) -> Credential | None:
    record = await conn.fetchrow(DELETE, key_id, user_id)
    return _credential(record) if record else None


async def delete_all(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute(DELETE_ALL, user_id)


async def record_use(conn: asyncpg.Connection | asyncpg.Pool, credential: Credential, new_sign_count: int,
                     backed_up: bool) -> int | None:
    """None when a concurrent use moved the counter first; else the owner's unused recovery codes."""
    remaining = await conn.fetchval(RECORD_USE, credential.id, credential.sign_count, new_sign_count, backed_up)
    return None if remaining is None else int(remaining)
