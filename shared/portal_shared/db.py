"""The asyncpg pool: one per service, its search_path fixed to the service's own schema."""

from __future__ import annotations

import json

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


async def create_pool(dsn: str, *, schema: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
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
