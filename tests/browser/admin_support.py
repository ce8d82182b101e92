"""Steps of the admin console's browser tests: sign in as the MSP admin, open the console's pages, check a
state (screenshot + axe-core, at desktop and phone width), and read the API as a given user."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.helpers import DESKTOP, PHONE, assert_accessible, screenshot, submit_email_then_password, wait_ready
from tests.browser.real_stack import ADMIN, Real, User
from tests.support.portal_client import Portal
from tests.support.stack import DEMO_PASSWORD


def check(page: Page, name: str, *, phone: bool = False) -> None:
    """One page state: a screenshot and an axe-core scan (no serious or critical finding); with `phone`,
    the same again at phone width."""
    screenshot(page, f"admin-{name}")
    assert_accessible(page)
    if phone:
        page.set_viewport_size(PHONE)
        try:
            screenshot(page, f"admin-{name}-phone")
            assert_accessible(page)
        finally:
            page.set_viewport_size(DESKTOP)


def sign_in(page: Page, real: Real, email: str = ADMIN, password: str = DEMO_PASSWORD) -> None:
    submit_email_then_password(page, real.base_url, email, password)
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)


def open_console(page: Page, real: Real, path: str = "/portal/admin/") -> None:
    page.goto(real.url(path))
    wait_ready(page)


def open_client(page: Page, real: Real, client_id: str) -> None:
    open_console(page, real, f"/portal/admin/client?id={client_id}")


def open_user(page: Page, real: Real, user_id: str) -> None:
    open_console(page, real, f"/portal/admin/user?id={user_id}")


def user_row(page: Page, email: str) -> Locator:
    return page.locator("#users-body tr", has_text=email)


def api_as(real: Real, user: User, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """`method path` with a client signed in as `user` (not the browser)."""

    async def steps(client: Portal) -> tuple[int, Any]:
        status, data, _ = await client.request(method, path, body)
        return status, data

    return real.call(user.email, user.password, steps)


def admin_api(real: Real, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async def steps(client: Portal) -> tuple[int, Any]:
        status, data, _ = await client.request(method, path, body)
        return status, data

    return real.as_admin(steps)


def until_reloaded(page: Page, locator: Locator, text: str, attempts: int = 50) -> None:
    """Reloads the page until `locator` shows `text` (a projection the server updates from an event:
    the reload is the poll, the text the positive signal)."""
    for _ in range(attempts):
        if text in (locator.inner_text() if locator.count() else ""):
            return
        page.reload()  # each reload asks the server again; no fixed sleep
        wait_ready(page)
    expect(locator).to_contain_text(text)
