"""The admin pages' gate on the real stack: nginx asks the real profile service (GET /internal/auth, its
X-Portal-Role) whether the session is an msp_admin's. Independent of the admin pages being built: an
admin is let through (the page, or a 404 while ui/admin has no such page), never refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest

from tests.e2e.test_flows import NEW_PASSWORD, invited_user, mailbox  # noqa: F401 (mailbox: a fixture)
from tests.support.portal_client import Mailbox, Portal
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow
PAGES = ("/portal/admin", "/portal/admin/", "/portal/admin/client?id=1", "/portal/admin/user/")


async def _page(portal: Portal, path: str) -> tuple[int, dict[str, str], str]:
    async with portal.session.get(portal.base_url + path, allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.text()


@pytest.fixture
async def admin(portal_stack: Any) -> AsyncIterator[Portal]:
    portal = Portal(portal_stack.base_url)
    await portal.login("admin@msp.example", DEMO_PASSWORD)
    yield portal
    await portal.close()


@pytest.fixture
async def client_user(portal_stack: Any, mailbox: Mailbox) -> AsyncIterator[tuple[Portal, str]]:  # noqa: F811
    address = await invited_user(portal_stack, mailbox)
    portal = Portal(portal_stack.base_url)
    await portal.login(address, NEW_PASSWORD)
    yield portal, address
    await portal.close()


async def test_an_msp_admin_is_let_through(admin: Portal, portal_stack: Any) -> None:
    built = portal_stack.nginx.html_root / "portal" / "admin"
    for path in PAGES:
        status, headers, text = await _page(admin, path)
        name = path.split("?")[0].removeprefix("/portal/admin").strip("/") or "index"
        if (built / f"{name}.html").exists():
            assert status == 200 and text == (built / f"{name}.html").read_text(), path
            assert headers["Cache-Control"] == "no-store"
        else:
            assert status == 404 and headers["Content-Type"].startswith("application/problem+json"), path
        assert "X-Portal-Role" not in headers and "X-Portal-Identity" not in headers


async def test_an_admin_viewing_an_account_keeps_the_admin_pages(
        admin: Portal, client_user: tuple[Portal, str]) -> None:
    _portal, address = client_user
    status, users = await admin.get(f"/api/admin/users?q={address}")
    assert status == 200 and len(users) == 1, users
    status, body = await admin.post(f"/api/admin/users/{users[0]['id']}/impersonate", {"reason": "gate test"})
    assert status == 200, body
    status, session = await admin.get("/api/auth/session")
    assert session["impersonator"] and session["user"]["role"] == "client_user"
    status, _headers, text = await _page(admin, "/portal/admin/")
    assert status in {200, 404} and "You don't have access" not in text


async def test_a_client_user_gets_the_portals_403_page(client_user: tuple[Portal, str]) -> None:
    portal, _address = client_user
    for path in PAGES:
        status, headers, text = await _page(portal, path)
        assert status == 403, path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "You don't have access to this page" in text and 'href="/portal/profile"' in text
        assert "{{ASSETS}}" not in text and "/portal/assets/" in text  # styled like the portal's pages


async def test_no_session_or_a_pending_one_is_sent_to_sign_in(client_user: tuple[Portal, str],
                                                              portal_stack: Any) -> None:
    portal, address = client_user
    stranger = Portal(portal_stack.base_url)
    pending = Portal(portal_stack.base_url)
    try:
        for path in PAGES:
            status, headers, _text = await _page(stranger, path)
            assert status == 302 and headers["Location"] == f"/portal/login?next={path}", path
        # the same user with two-factor on, between password and code: not signed in yet
        status, setup = await portal.post("/api/mfa/totp/setup")
        assert status == 200, setup
        status, body = await portal.post("/api/mfa/totp/verify", {"code": pyotp.TOTP(setup["secret"]).now()})
        assert status == 200, body
        assert (await pending.login(address, NEW_PASSWORD))["state"] == "second_factor_required"
        status, headers, _text = await _page(pending, "/portal/admin/")
        assert status == 302 and headers["Location"] == "/portal/login?next=/portal/admin/"
    finally:
        await stranger.close()
        await pending.close()
