"""Browser-test fixtures: Debian's Chromium driven by Playwright, pages through the nginx gateway.

`portal` runs LocalNginx in front of an in-memory fake of the profile and mfa APIs
(tests/browser/fake_portal.py); the full-flow tests against the real stack can reuse `browser`,
`page_watch` and the helpers in tests/browser/helpers.py with another base URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.fake_portal import FakeState, fake_apps
from tests.browser.helpers import DESKTOP, PageWatch, launch_chromium
from tests.e2e.stubs import gateway_in_front_of


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class FakePortal:
    base_url: str
    state: FakeState


@pytest.fixture
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePortal]:
    state = FakeState()
    with gateway_in_front_of(fake_apps(state), tmp_path_factory.mktemp("portal")) as (nginx, _servers):
        yield FakePortal(nginx.base_url, state)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def page_watch(page: Page) -> PageWatch:
    """Console errors and CSP violations of `page`; call .assert_clean() at the end of a test."""
    return PageWatch(page)
