"""The one JS source of the new-password rules (ui/assets/js/password-rules.js) says what the server says:
its limits are passwords.py's, and for every case below its field errors equal the server's own
(accounts.new_password_errors), NFKC and code-point counting included; the shared block
(partials/new-password.js) shows the rule and checks it before any request."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from profile_service import passwords
from profile_service.accounts import new_password_errors

from tests.browser.helpers import PageWatch, wait_ready
from tests.browser.real_stack import Real

pytestmark = pytest.mark.slow

OWNER = SimpleNamespace(email="rules@client.example", name="Rule Tester")
CASES = [
    ("", ""),
    ("", "something else"),
    ("short", "short"),
    ("seven77", "seven77"),
    ("ｆｕｌｌｗｉｄｔｈ９", "fullwidth9"),  # NFKC: the same 10 characters
    ("A\u030angstrom is fine", "\u00c5ngstrom is fine"),  # decomposed and composed Å match
    ("x" * 128, "x" * 128),
    ("x" * 129, "x" * 129),
    ("y" * 127 + "\U0001f600", "y" * 127 + "\U0001f600"),  # 128 code points, 129 UTF-16 units
    ("a long enough one", "a long enough two"),
    ("a long enough one", ""),
]


def js_rules(page: Page) -> Any:
    """Imports the served module in the page (the assets' hashed path, as the pages load it)."""
    return page.evaluate(
        """async (cases) => {
            const css = document.querySelector('link[rel="stylesheet"]').getAttribute('href');
            const rules = await import(css.replace(/\\/css\\/portal\\.css$/, '/js/password-rules.js'));
            return {min: rules.MIN_PASSWORD, max: rules.MAX_PASSWORD,
                    errors: cases.map(([p, c]) => rules.newPasswordErrors(p, c))};
        }""", CASES)


def test_the_js_rules_are_the_servers(page: Page, page_watch: PageWatch, real: Real) -> None:
    page.goto(real.url("/portal/reset-password?token=some-token"))
    wait_ready(page)
    answer = js_rules(page)
    assert (answer["min"], answer["max"]) == (passwords.MIN_LENGTH, passwords.MAX_LENGTH)
    for (password, confirm), errors in zip(CASES, answer["errors"], strict=True):
        assert errors == new_password_errors(password, confirm, OWNER), (password, confirm)  # type: ignore[arg-type]
    page_watch.assert_clean()


def test_the_shared_block_shows_and_checks_the_rule(page: Page, page_watch: PageWatch, real: Real) -> None:
    page.goto(real.url("/portal/accept-invite?token=some-token"))
    wait_ready(page)
    new = page.get_by_label("New Password", exact=True)
    expect(page.locator("#new-password-hint")).to_have_text(f"Minimum {passwords.MIN_LENGTH} characters.")
    expect(new).to_have_attribute("minlength", str(passwords.MIN_LENGTH))
    expect(new).to_have_attribute("aria-describedby", "new-password-hint new-password-error")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "/api/" in request.url else None)
    new.fill("x" * (passwords.MAX_LENGTH + 1))
    page.get_by_label("Confirm New Password").fill("x" * (passwords.MAX_LENGTH + 1))
    page.get_by_role("button", name="Set Password").click()
    expect(page.locator("#new-password-error")).to_have_text(f"Use at most {passwords.MAX_LENGTH} characters.")
    expect(new).to_have_attribute("aria-invalid", "true")
    new.fill("long enough now")
    page.get_by_role("button", name="Set Password").click()
    expect(page.locator("#confirm-password-error")).to_have_text("The passwords do not match.")
    assert requests == []  # both caught in the page, before any request
    page_watch.assert_clean()
