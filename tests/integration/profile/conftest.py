"""Fixtures for profile's integration tests: the real profile app on real Postgres and RabbitMQ with the
contract's demo data, and a stand-in for mfa's internal endpoints (see profile_support.StandInMfa)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from profile_service.bootstrap import seed_demo
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, ProfileHarness, StandInMfa

from tests.support.services import running_service


@pytest.fixture
async def stand_in_mfa(stack_env: dict[str, str]) -> AsyncIterator[tuple[StandInMfa, str]]:
    mfa = StandInMfa(stack_env["SERVICE_AUTH_KEY"])
    server = TestServer(mfa.app(), host="127.0.0.1")
    await server.start_server()
    yield mfa, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def portal(stack_env: dict[str, str], stand_in_mfa: tuple[StandInMfa, str]) -> AsyncIterator[ProfileHarness]:
    """The profile service with the contract's demo data, both demo accounts having PASSWORD."""
    mfa, mfa_url = stand_in_mfa
    await seed_demo(stack_env["PROFILE_DATABASE_URL"], password=PASSWORD)
    db = await asyncpg.connect(stack_env["PROFILE_DATABASE_URL"])
    try:
        ids = {r["email"]: str(r["id"]) for r in await db.fetch("SELECT id, email FROM profile.users")}
        async with running_service("profile", stack_env, MFA_URL=mfa_url) as client:
            harness = ProfileHarness(client, stack_env, mfa, mfa_url, db, ids[ADMIN_EMAIL], ids[DEMO_EMAIL])
            try:
                yield harness
            finally:
                for browser in harness.browsers:
                    await browser.close()
    finally:
        await db.close()
