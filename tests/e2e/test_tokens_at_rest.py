"""No usable reset or invitation token at rest: after the emails went out (and after the reset was done),
no table of any service schema and no log file of the stack holds the token of the email's link.

The whole stack as `make up` runs it; every table is read as text (`SELECT t::text`, all columns), every
`*.log` under the stack's directory is read whole (services, nginx access and error logs, Postgres,
RabbitMQ, the mail sink). Only `var/mail/` (the delivered emails themselves) may hold the link.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.support.portal_client import Mailbox, Portal, link_token, unique_email
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow
SCHEMAS = ("profile", "mfa", "notifier")
PASSWORD = "a long and fresh passphrase 11"
NEW_PASSWORD = "another long passphrase 12"


@dataclass
class Scenario:
    tokens: dict[str, str]  # name -> the token of an emailed link
    # phase ("after the emails", "after the reset") -> places that still hold a token
    findings: dict[str, list[str]] = field(default_factory=dict)


def _forms(token: str) -> set[str]:
    """The token as the link carries it and decoded (a log or a table could hold either)."""
    return {token, urllib.parse.unquote(token)}


async def _tables_holding(stack: Any, tokens: dict[str, str]) -> list[str]:
    dsn = stack.postgres.admin_dsn.rsplit("/", 1)[0] + "/portal"
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch("SELECT table_schema, table_name FROM information_schema.tables "
                                  "WHERE table_type = 'BASE TABLE' AND table_schema = ANY($1::text[]) "
                                  "ORDER BY 1, 2", list(SCHEMAS))
        assert {t["table_schema"] for t in tables} == set(SCHEMAS), tables
        found = []
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            rows = await conn.fetch(f"SELECT t::text AS row FROM {name} t")  # names from the catalog, not input
            for token_name, token in tokens.items():
                if any(form in row["row"] for row in rows for form in _forms(token)):
                    found.append(f"table {table['table_schema']}.{table['table_name']} ({token_name})")
        return found
    finally:
        await conn.close()


def _logs_holding(stack: Any, tokens: dict[str, str]) -> list[str]:
    mail = stack.mail_dir.resolve()
    logs = [p for p in stack.var.rglob("*.log") if p.is_file() and mail not in p.resolve().parents]
    names = {p.name for p in logs}
    assert {"profile.log", "mfa.log", "notifier.log", "nginx-access.log"} <= names, names
    found = []
    for path in logs:
        text = path.read_bytes().decode(errors="replace")
        for token_name, token in tokens.items():
            if any(form in text for form in _forms(token)):
                found.append(f"log {path.relative_to(stack.var)} ({token_name})")
    return found


async def _scan(stack: Any, tokens: dict[str, str], *, within: float = 10.0) -> list[str]:
    """Where the tokens are; polled for a while, since the relay marks a row sent just after the broker
    confirmed it, and the notifier records a job sent just after the SMTP server took the email."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await _tables_holding(stack, tokens) + _logs_holding(stack, tokens)
        if not found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def scenario(portal_stack: Any) -> Scenario:
    base = portal_stack.base_url
    mailbox = Mailbox(portal_stack.mail_dir)
    address = unique_email("at-rest")
    admin, user = Portal(base), Portal(base)
    try:
        await admin.login("admin@msp.example", DEMO_PASSWORD)
        status, client = await admin.post("/api/admin/clients", {"name": f"At Rest {address[8:16]}"})
        assert status == 201, client
        status, created = await admin.post("/api/admin/users", {"email": address, "name": "Rest Tester",
                                                                  "client_id": client["id"]})
        assert status == 201, created
        [invite] = await mailbox.wait_for(address, "profile.user_invited")
        invite_token = link_token(invite, "accept-invite")
        # The browser opens the link: the gateway sees the token in the query string.
        async with user.session.get(f"{base}/portal/accept-invite?token={invite_token}") as page:
            assert page.status == 200
        status, body = await user.post("/api/auth/invitation/accept", {
            "token": invite_token, "new_password": PASSWORD, "confirm_password": PASSWORD})
        assert status == 204, body

        status, _ = await user.post("/api/auth/password-reset", {"email": address})
        assert status == 202
        [reset] = await mailbox.wait_for(address, "profile.password_reset_requested")
        reset_token = link_token(reset, "reset-password")
        async with user.session.get(f"{base}/portal/reset-password?token={reset_token}") as page:
            assert page.status == 200
        found = Scenario(tokens={"reset token": reset_token, "invitation token": invite_token})
        found.findings["after the emails"] = await _scan(portal_stack, found.tokens)

        status, body = await user.post("/api/auth/password-reset/confirm", {
            "token": reset_token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
        assert status == 204, body
        await mailbox.wait_for(address, "profile.password_changed")
        found.findings["after the reset"] = await _scan(portal_stack, found.tokens)
        return found
    finally:
        await admin.close()
        await user.close()


@pytest.mark.parametrize("phase", ["after the emails", "after the reset"])
async def test_no_table_or_log_holds_a_token(scenario: Scenario, phase: str) -> None:
    """The outbox rows (scrubbed when published), the profile's token table (hashes only), the notifier's
    email jobs (scrubbed once sent), the logs (no query strings, no bodies)."""
    assert scenario.findings[phase] == []
