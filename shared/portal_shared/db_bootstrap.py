"""Creates the portal database, one login role per service and the schema each one owns.

Run with a superuser DSN by `make up`, the test fixtures and the compose/k8s init job. Idempotent.
Each role owns only its schema; PUBLIC gets nothing, so no service can read another's tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg

SERVICE_SCHEMAS = {"profile": "profile_svc", "mfa": "mfa_svc", "notifier": "notifier_svc"}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def dsn_for(admin_dsn: str, *, user: str | None = None, password: str | None = None,
            database: str | None = None) -> str:
    parts = urlsplit(admin_dsn)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    auth = user or parts.username or ""
    if password is not None:
        auth += f":{password}"
    elif parts.password and user is None:
        auth += f":{parts.password}"
    netloc = f"{auth}@{host}{port}" if auth else f"{host}{port}"
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


async def bootstrap(admin_dsn: str, *, database: str, passwords: dict[str, str]) -> dict[str, str]:
    """Ensure the database, roles and schemas exist; return each service's DATABASE_URL."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f"CREATE DATABASE {_quote_ident(database)}")
    finally:
        await conn.close()

    conn = await asyncpg.connect(dsn_for(admin_dsn, database=database))
    urls = {}
    try:
        await conn.execute(f"REVOKE ALL ON DATABASE {_quote_ident(database)} FROM PUBLIC")
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for schema, role in SERVICE_SCHEMAS.items():
            password = passwords[schema]
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"ALTER ROLE {_quote_ident(role)} WITH LOGIN PASSWORD {_quote_literal(password)}")
            else:
                await conn.execute(
                    f"CREATE ROLE {_quote_ident(role)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    f"PASSWORD {_quote_literal(password)}")
            await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {_quote_ident(database)} TO {_quote_ident(role)}")
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)} AUTHORIZATION {_quote_ident(role)}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {_quote_ident(schema)} FROM PUBLIC")
            await conn.execute(f"ALTER ROLE {_quote_ident(role)} SET search_path TO {_quote_ident(schema)}")
            urls[schema] = dsn_for(admin_dsn, user=role, password=password, database=database)
    finally:
        await conn.close()
    return urls


def main() -> None:
    """`python -m portal_shared.db_bootstrap`: for the compose and Kubernetes init jobs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default=os.environ.get("PORTAL_DATABASE", "portal"))
    args = parser.parse_args()
    admin_dsn = os.environ["ADMIN_DATABASE_URL"]
    passwords = {s: os.environ[f"{s.upper()}_DB_PASSWORD"] for s in SERVICE_SCHEMAS}
    asyncio.run(bootstrap(admin_dsn, database=args.database, passwords=passwords))
    print("database, roles and schemas are ready")


if __name__ == "__main__":
    main()
