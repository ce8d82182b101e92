"""`uv run portal-admin create-admin` without DATABASE_URL finds the `make up` stack's database under var/,
while the stack runs and after it stopped; the printed link sets the new admin's password (issue #13)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.portal_client import Portal
from tests.support.stack import DEMO_PASSWORD, throwaway_stack

pytestmark = pytest.mark.slow
NEW_PASSWORD = "quiet granite harbour 19"
PORTAL_ADMIN = Path(sys.executable).with_name("portal-admin")  # the console script `uv run portal-admin` runs


def portal_admin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PORTAL_BASE_URL", "PORTAL_VAR_DIR"}}
    return subprocess.run([str(PORTAL_ADMIN), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def create_admin(email: str, name: str, *, cwd: Path, base_url: str) -> str:
    result = portal_admin("create-admin", "--email", email, "--name", name, cwd=cwd)
    assert result.returncode == 0, result.stderr
    link = next(word for word in result.stdout.split() if word.startswith("http"))
    assert link.startswith(f"{base_url}/portal/accept-invite?token="), link  # the stack's own gateway
    return link


async def accept_and_sign_in(base_url: str, link: str, email: str) -> str:
    """Set the password through the gateway with the link's token, sign in; the session's role."""
    token = parse_qs(urlsplit(link).query)["token"][0]
    portal = Portal(base_url)
    try:
        status, body = await portal.post("/api/auth/invitation/accept", {
            "token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
        assert status == 204, body
        await portal.login(email, NEW_PASSWORD)
        status, session = await portal.get("/api/auth/session")
        assert status == 200, session
        return str(session["user"]["role"])
    finally:
        await portal.close()


def test_portal_admin_finds_the_stack_database_under_var_while_running_and_after(tmp_path: Path) -> None:
    stack = throwaway_stack()
    repo = stack.var.parent  # stands for the repo: `var/` in the directory portal-admin runs in
    assert stack.var.name == "var"
    try:
        stack.start()
        link = create_admin("first.admin@msp.example", "First Admin", cwd=repo, base_url=stack.base_url)
        assert asyncio.run(accept_and_sign_in(stack.base_url, link, "first.admin@msp.example")) == "msp_admin"
        # From a subdirectory too, as when run anywhere in the repo.
        (repo / "docs").mkdir()
        again = portal_admin("create-admin", "--email", "first.admin@msp.example", "--name", "X", cwd=repo / "docs")
        assert again.returncode == 1 and "already exists" in again.stderr, again.stderr
    finally:
        stack.stop()

    # After the stack stopped: its database is served from var/ for the command alone.
    link = create_admin("second.admin@msp.example", "Second Admin", cwd=repo, base_url=stack.base_url)
    assert not (stack.var / "postgres" / "data" / "postmaster.pid").exists(), "the temporary server must stop"
    again = type(stack)(var=stack.var, ports=stack.ports, demo_password=DEMO_PASSWORD, log_format="json")
    try:
        again.start()
        assert asyncio.run(accept_and_sign_in(again.base_url, link, "second.admin@msp.example")) == "msp_admin"
    finally:
        again.stop()


def test_portal_admin_without_database_url_or_stack_data_says_what_to_do(tmp_path: Path) -> None:
    result = portal_admin("create-admin", "--email", "x@msp.example", "--name", "X", cwd=tmp_path)
    assert result.returncode == 1
    assert "DATABASE_URL is not set" in result.stderr and "make up" in result.stderr, result.stderr
