"""The asyncpg pool: one per service, its search_path fixed to the service's own schema.

`DATABASE_URL` may name several hosts (`postgresql://u:p@db-1:5432,db-2:5432/portal`): asyncpg tries them
in order and, with `target_session_attrs=read-write` (the default here when several hosts are named, since
every pool writes), keeps the one that is the primary. After a failover, a new connection finds the
promoted standby by itself; connections to the lost primary fail once (a 503 for that request) and are
replaced.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Returning a connection to the pool: asyncpg still rolls back an open transaction and drops
    listeners, but this skips its RESET ALL/UNLISTEN/CLOSE ALL round trip. No service changes session
    settings, LISTENs, or holds cursors or session advisory locks on pool connections (the relay's LISTEN
    has its own connection; migrations take transaction-level locks), and that round trip was a third of
    the database calls of a GET /api/profile."""


class NoPrimaryError(ConnectionError):
    """Every host of a multi-host DSN answered, but none is a primary (a failover in progress).

    A ConnectionError (so an OSError), like a refused connection: the web layer answers 503 and the
    consumers and start-up wait, where asyncpg's own TargetServerAttributeNotMatched would be a 500."""


def session_attrs(dsn: str) -> str | None:
    """`read-write` for a DSN naming several hosts without its own choice (nor PGTARGETSESSIONATTRS), else
    None (asyncpg's default, `any`): a pool on a standby would fail every write."""
    parts = urlsplit(dsn)
    if "," not in parts.netloc.rpartition("@")[2] and "," not in ",".join(parse_qs(parts.query).get("host", [])):
        return None
    if "target_session_attrs" in parse_qs(parts.query) or os.environ.get("PGTARGETSESSIONATTRS"):
        return None
    return "read-write"


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect on `dsn`, multi-host aware (see the module docstring).

    Raises:
        NoPrimaryError: several hosts answered and none of them is a primary.
        OSError, asyncpg errors: as asyncpg.connect.
    """
    attrs = session_attrs(dsn)
    if attrs is not None:
        kwargs.setdefault("target_session_attrs", attrs)
    try:
        return await asyncpg.connect(dsn, **kwargs)
    except asyncpg.exceptions.TargetServerAttributeNotMatched as exc:
        raise NoPrimaryError(str(exc)) from exc


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection that reports a connection broken under an operation as broken.

    When the server vanishes mid-operation (its primary killed), asyncpg sometimes answers the next call on
    that connection with InternalClientError "cannot switch to state N; another operation (2) is in
    progress" instead of ConnectionDoesNotExistError (seen in the HA failover test). Callers treat the
    latter as "database down" (503, consumers wait and retry); the former looked like a bug: a 500, or
    the notifier's email job crashing after its send and sending again. So: terminate the connection
    (the pool replaces it) and raise ConnectionDoesNotExistError."""

    def _broken(self, exc: Exception) -> Exception:
        self.terminate()
        return asyncpg.exceptions.ConnectionDoesNotExistError(f"connection broke under an operation: {exc}")

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as exc:
            raise self._broken(exc) from exc

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().executemany(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as exc:
            raise self._broken(exc) from exc

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().fetch(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as exc:
            raise self._broken(exc) from exc

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().fetchval(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as exc:
            raise self._broken(exc) from exc

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().fetchrow(*args, **kwargs)
        except asyncpg.exceptions.InternalClientError as exc:
            raise self._broken(exc) from exc


async def create_pool(dsn: str, *, schema: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        connect=connect,
        connection_class=_Connection,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": schema, "application_name": f"portal-{schema}"},
        command_timeout=30,
    )
    assert pool is not None
    return pool


async def check_database(pool: asyncpg.Pool) -> None:
    async with pool.acquire(timeout=2) as conn:
        await conn.fetchval("SELECT 1")
