"""A wrong password does the same database work whether or not the account exists (no timing oracle):
the same statements, in the same order, on the same kind of handle (bench/bench_http.py measures the time)."""

from __future__ import annotations

import secrets
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from profile_service import signin
from profile_service.errors import BadCredentials
from profile_service.repository import users as users_repo


class RecordingPool:
    """Stands in for the asyncpg pool: records each call (method and SQL) and finds nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def _record(self, method: str, sql: str) -> None:
        self.calls.append((method, " ".join(sql.split())))

    async def execute(self, sql: str, *args: Any) -> str:
        self._record("execute", sql)
        return "INSERT 0 0"

    async def fetchrow(self, sql: str, *args: Any) -> None:
        self._record("fetchrow", sql)

    async def fetchval(self, sql: str, *args: Any) -> None:
        self._record("fetchval", sql)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self._record("fetch", sql)
        return []

    def acquire(self) -> Any:
        self._record("acquire", "")
        raise AssertionError("a wrong password needs no connection of its own (no extra transaction)")


class WrongHasher:
    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return False


@pytest.mark.parametrize("device_cookie", [None, secrets.token_urlsafe(32)])
async def test_a_wrong_password_costs_the_same_statements_with_or_without_an_account(
        monkeypatch: pytest.MonkeyPatch, device_cookie: str | None) -> None:
    account = SimpleNamespace(id=str(uuid.uuid4()), password_hash="$argon2id$stored", locked_until=None, active=True,
                              failed_attempts=3, two_factor_enabled=False,
                              client=SimpleNamespace(id=str(uuid.uuid4()), name="Client"))
    traces = []
    for user in (account, None):
        pool = RecordingPool()

        async def by_email(conn: Any, email: str, found: Any = user) -> Any:
            await conn.fetchrow("SELECT … FROM users WHERE lower(email) = lower($1)", email)
            return found

        monkeypatch.setattr(users_repo, "get_by_email", by_email)
        ctx: Any = SimpleNamespace(pool=pool, hasher=WrongHasher())
        with pytest.raises(BadCredentials):
            await signin.login(ctx, email="someone@client.example", password="wrong", previous=None,
                               user_agent="test", ip="192.0.2.1", device_cookie=device_cookie)
        traces.append(pool.calls)
    existing, unknown = traces
    assert existing == unknown
    assert [method for method, sql in existing if "audit_log" in sql] == ["execute"], \
        "the failure and its audit rows are one statement"
