"""The "This wasn't me" page against the real stack: the undo is confirmed on the page, including that
two-factor authentication is now off when the undone change was the account's only factor."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import PageWatch, wait_ready
from tests.browser.real_stack import Real, check
from tests.support.portal_client import link_token

pytestmark = pytest.mark.slow


def test_not_me_removes_the_app_and_says_two_factor_is_off(
        page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("not-me")
    real.enable_totp(user)
    [email] = real.wait_for_mail(user.email, "mfa.two_factor_enabled")
    page.goto(real.url(f"/portal/not-me?token={link_token(email, 'not-me')}"))
    wait_ready(page)
    page.get_by_role("button", name="Secure My Account").click()
    expect(page.get_by_text("We've undone the change")).to_be_visible()
    expect(page.get_by_text("Two-factor authentication is now off")).to_be_visible()
    check(page, "not-me-two-factor-off")
    real.wait_for_mail(user.email, "profile.change_undone")
    page_watch.assert_clean()

