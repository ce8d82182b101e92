"""Foundation: each service starts for real, migrates, reports health; schemas are isolated by role."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from portal_shared.migrate import run_migrations

from tests.support.services import running_service

SERVICES = ["profile", "mfa", "notifier"]


@pytest.mark.parametrize("service", SERVICES)
async def test_service_starts_migrates_and_is_ready(service: str, stack_env: dict[str, str]) -> None:
    async with running_service(service, stack_env) as client:
        live = await client.get("/health/live")
        assert live.status == 200
        ready = await client.get("/health/ready")
        body = await ready.json()
        assert ready.status == 200, body
        assert body["checks"] == {"postgres": "ok", "rabbitmq": "ok"}
        metrics = await client.get("/metrics")
        assert "portal_http_requests_total" in await metrics.text()
        missing = await client.get("/nope")
        assert missing.status == 404
        assert missing.content_type == "application/problem+json"
        assert (await missing.json())["status"] == 404
        assert missing.headers["X-Request-ID"]

    conn = await asyncpg.connect(stack_env[f"{service.upper()}_DATABASE_URL"])
    try:
        versions = await conn.fetch(f"SELECT version FROM {service}.schema_migrations")
        assert "shared/0001_outbox_inbox" in {r["version"] for r in versions}
    finally:
        await conn.close()


async def test_request_id_from_the_gateway_is_kept(stack_env: dict[str, str]) -> None:
    async with running_service("notifier", stack_env) as client:
        response = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
        assert response.headers["X-Request-ID"] == "abc-123"
        response = await client.get("/health/live", headers={"X-Request-ID": "bad id with spaces and {braces}"})
        assert response.headers["X-Request-ID"] != "bad id with spaces and {braces}"


async def test_mfa_role_cannot_read_profile_tables(stack_env: dict[str, str]) -> None:
    async with running_service("profile", stack_env):
        pass  # creates the profile schema's tables
    mfa = await asyncpg.connect(stack_env["MFA_DATABASE_URL"])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await mfa.fetch("SELECT * FROM profile.schema_migrations")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await mfa.execute("CREATE TABLE profile.intruder (id int)")
    finally:
        await mfa.close()


async def test_migrations_are_safe_twice_and_concurrently(stack_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (tmp_path / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    dsn = stack_env["NOTIFIER_DATABASE_URL"]
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    migrations = sorted(tmp_path.glob("*.sql"))
    try:
        results = await asyncio.gather(*(run_migrations(c, migrations, schema="notifier") for c in conns))
        applied = [v for r in results for v in r]
        assert sorted(applied) == ["service/0001_things", "service/0002_more", "shared/0001_outbox_inbox"]
        assert await run_migrations(conns[0], migrations, schema="notifier") == []
        assert await conns[0].fetchval("SELECT count(*) FROM notifier.things") == 0
    finally:
        for c in conns:
            await c.close()


async def test_a_failing_migration_applies_nothing(stack_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("THIS IS NOT SQL;")
    conn = await asyncpg.connect(stack_env["MFA_DATABASE_URL"])
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await run_migrations(conn, sorted(tmp_path.glob("*.sql")), schema="mfa")
        assert await conn.fetchval("SELECT to_regclass('mfa.good')") is None
    finally:
        await conn.close()
