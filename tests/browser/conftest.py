"""Browser-test fixtures: Debian's Chromium driven by Playwright, pages through the nginx gateway of the
real stack (`real`, tests/browser/real_stack.py: one stack for the whole browser session, from
tests/conftest.py's `portal_stack`); `browser`, `context`, `page` and `page_watch` for every test, and
the helpers in tests/browser/helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.helpers import DESKTOP, PageWatch, launch_chromium
from tests.browser.real_stack import real  # noqa: F401 (the fixture, for every browser test module)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


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
