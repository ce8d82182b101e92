"""A synchronous standby promoted after the primary is killed: a pool on the multi-host DSN follows it.

Real PostgreSQL servers from the OS binaries (a primary and a `pg_basebackup -R` standby on loopback);
the pool is made once and never recreated. No commit that returned is lost (synchronous replication).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from portal_devstack.postgres import LocalPostgres
from portal_devstack.postgres_standby import SYNCHRONOUS_PRIMARY, LocalStandby, multi_host_dsn
from portal_devstack.process import StartError, free_port
from portal_shared import db


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[LocalPostgres, LocalStandby]]:
    primary = LocalPostgres(tmp_path / "primary" / "data", free_port(), tmp_path / "primary.log",
                            extra_settings=list(SYNCHRONOUS_PRIMARY))
    try:
        primary.start()
    except StartError as exc:  # no OS binaries (a containers-only runner)
        pytest.skip(f"needs the OS PostgreSQL: {exc}")
    standby = LocalStandby.create(primary, tmp_path / "standby" / "data", free_port(), tmp_path / "standby.log")
    try:
        standby.start()
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


async def _insert(pool: asyncpg.Pool, n: int) -> bool:
    try:
        await pool.execute("INSERT INTO ha_probe (n) VALUES ($1)", n)
        return True
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


async def test_a_pool_follows_the_promoted_standby_and_keeps_every_commit(
        pair: tuple[LocalPostgres, LocalStandby]) -> None:
    primary, standby = pair
    # The standby is named first: read-write must skip it while it is a standby.
    dsn = multi_host_dsn(primary.admin_dsn, [standby.server.port, primary.port])
    pool = await db.create_pool(dsn, schema="public", min_size=2, max_size=4)
    try:
        assert await pool.fetchval("SHOW port") == str(primary.port)
        await pool.execute("CREATE TABLE ha_probe (n integer PRIMARY KEY)")
        committed = [n for n in range(200) if await _insert(pool, n)]
        assert len(committed) == 200
        # Synchronous: the standby had each commit before the primary answered.
        assert await pool.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1

        await asyncio.to_thread(primary.kill)
        failures: list[BaseException] = []
        try:  # the switch: connection errors (503 material), no other kind of error
            await pool.fetchval("SELECT 1")
        except Exception as exc:
            failures.append(exc)
        assert all(isinstance(f, OSError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError)
                   for f in failures), failures

        await standby.promote()
        promoted = time.monotonic()
        n = 200
        while not await _insert(pool, n):
            assert time.monotonic() - promoted < 10, "the pool did not reach the promoted standby in 10 s"
            await asyncio.sleep(0.05)
        assert await pool.fetchval("SHOW port") == str(standby.server.port)
        rows = {r["n"] for r in await pool.fetch("SELECT n FROM ha_probe")}
        assert set(committed) <= rows, "a commit acknowledged by the old primary is missing"
    finally:
        await pool.close()
