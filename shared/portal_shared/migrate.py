"""Applies a service's ordered SQL migrations once, in one transaction, under an advisory lock.

Safe to run twice or from several replicas at once: the second runner waits on the lock, then finds
every file recorded and does nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger("portal.migrate")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def listed(package_file: str, *names: str) -> tuple[Path, ...]:
    """A package's migrations (files in its `migrations/` folder), named in the order they apply.

    Each service lists its own in app.py: the order is written down and reviewed rather than implied by a
    directory listing, and a listed file that is missing stops the service at import, not half-way through.
    """
    folder = Path(package_file).resolve().parent / "migrations"
    paths = tuple(folder / name for name in names)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"listed migrations missing from {folder}: {', '.join(missing)}")
    return paths


SHARED_MIGRATIONS = listed(__file__, "0001_outbox_inbox.sql")


async def run_migrations(conn: asyncpg.Connection, migrations: Sequence[Path], *, schema: str) -> list[str]:
    """Apply the shared library's migrations (outbox, inbox), then the service's own `migrations`, in order.

    Versions are recorded as `shared/NNNN_name` and `service/NNNN_name`; returns those applied now.
    """
    applied_now: list[str] = []
    async with conn.transaction():
        # Transaction-scoped lock: released by commit or rollback, even if this process dies.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(_CREATE_LEDGER)
        done = {r["version"]: r["checksum"] for r in await conn.fetch(
            "SELECT version, checksum FROM schema_migrations")}
        pending = [("shared", p) for p in SHARED_MIGRATIONS] + [("service", p) for p in migrations]
        for label, path in pending:
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            version = f"{label}/{path.stem}"
            if version in done:
                if done[version] != checksum:
                    log.warning("migration_changed_after_apply", version=version)
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                               version, checksum)
            applied_now.append(version)
    if applied_now:
        log.info("migrations_applied", schema=schema, versions=applied_now)
    return applied_now
