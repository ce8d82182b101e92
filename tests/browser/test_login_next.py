"""After signing in, the login page returns to the portal page that sent the browser there (`?next=`, set
by the gateway for pages that need a session) — and never to anything that is not the portal's own path."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page

from tests.browser.helpers import PageWatch, wait_ready
from tests.browser.real_stack import Real

pytestmark = pytest.mark.slow


def _sign_in(page: Page, real: Real, query: str, email: str, password: str) -> None:
    page.goto(real.url(f"/portal/login{query}"))
    wait_ready(page)
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_a_page_that_asked_for_a_session_gets_the_browser_back(page: Page, real: Real) -> None:
    # (No page_watch here: the profile page's first call answers 401 in the console, which is the point.)
    user = real.new_user("next")
    page.goto(real.url("/portal/profile?tab=security"))  # the gateway sends a browser without a session ...
    page.wait_for_url(re.compile(r"/portal/login\?next="))
    page.get_by_label("Email").fill(user.email)  # ... to sign in, and the page brings it back there
    page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/portal/profile\?tab=security$"))


@pytest.mark.parametrize("target", ["https://evil.example/portal/", "//evil.example/portal/x",
                                    "/portal//evil.example", "/portal/\\\\evil.example", "javascript:alert(1)"])
def test_no_open_redirect(page: Page, page_watch: PageWatch, real: Real, target: str) -> None:
    user = real.new_user("no-open-redirect")
    _sign_in(page, real, f"?next={target}", user.email, user.password)
    page.wait_for_url(re.compile(r"/portal/profile$"))
    assert page.url.startswith(real.base_url)
    page_watch.assert_clean()
