"""Every portal page through nginx in headless Chromium, against the real stack: the product's words, no
console errors or CSP violations, a screenshot (desktop and phone), and an axe-core scan with no
serious/critical finding. States a page needs (a second factor, a key, an administrator viewing) are
made through the real API."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    PageWatch,
    add_virtual_authenticator,
    assert_accessible,
    assert_fits_phone,
    screenshot,
    submit_email_then_password,
    virtual_credentials,
    wait_ready,
)
from tests.browser.real_stack import ADMIN, Real, User, start_viewing
from tests.support.portal_client import Portal
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow

PUBLIC_PAGES = {
    "login": ("/portal/login", ["Sign in", "Email", "Continue", "Forgot password", "Sign in with a passkey"]),
    "forgot-password": ("/portal/forgot-password", ["Forgot password", "Email", "Send Reset Link"]),
    "reset-password": ("/portal/reset-password?token=some-token",
                       ["Reset your password", "New Password", "Confirm New Password", "Minimum 8 characters."]),
    "accept-invite": ("/portal/accept-invite?token=some-token",
                      ["Set up your account", "New Password", "Confirm New Password", "Set Password"]),
    "not-me": ("/portal/not-me?token=some-token", ["Secure My Account"]),
}


def open_profile(page: Page, real: Real, user: User) -> None:
    submit_email_then_password(page, real.base_url, user.email, user.password)
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)


def api_in_page(page: Page, path: str) -> Any:
    """GET `path` with the page's own session (what the server now holds for this account)."""
    return page.evaluate("async (path) => (await fetch(path, {credentials: 'same-origin'})).json()", path)


@pytest.mark.parametrize("name", list(PUBLIC_PAGES))
def test_public_page(page: Page, page_watch: PageWatch, real: Real, name: str) -> None:
    path, words = PUBLIC_PAGES[name]
    page.goto(real.url(path))
    wait_ready(page)
    text = page.locator("body").inner_text()
    for word in words:
        assert word in text, (name, word)
    # The shared page head (partials/page-head.js): skip link, brand, favicon.
    expect(page.get_by_role("link", name="Client Portal")).to_be_visible()
    expect(page.locator("a.skip-link")).to_have_attribute("href", "#main")
    assert page.locator('link[rel="icon"]').get_attribute("href").endswith("/img/favicon.svg")
    screenshot(page, name)
    assert_accessible(page)
    assert_fits_phone(page)
    screenshot(page, f"{name}-phone")
    page_watch.assert_clean()


def test_profile_page_with_everything_on(page: Page, page_watch: PageWatch, real: Real) -> None:
    company = real.client_named("Demo Client Co")
    user = real.new_user("everything", name="Demo User", client_id=company["id"], title="Office Manager",
                         mobile="+44 20 7946 0018")
    secret, _codes = real.enable_totp(user, key_name="YubiKey 5")
    submit_email_then_password(page, real.base_url, user.email, user.password)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    screenshot(page, "login-second-factor")
    assert_accessible(page)
    page.get_by_role("button", name="Authenticator App", exact=True).click()
    # The next time step's code: the one used to enable the app may not be replayed (within the ±1 window).
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)

    expect(page.get_by_role("heading", level=1)).to_have_text("Demo User")
    expect(page.locator("#avatar")).to_have_text("D")
    profile_text = page.locator("#panel-profile").inner_text()
    for word in ["Account Information", "Company", "Demo Client Co", "Title", "Office Manager", "Mobile",
                 "contact your MSP", "Edit Profile", "Name", "Email", "Phone",
                 "Contact support to change your email address", "Save Changes"]:
        assert word in profile_text, word
    expect(page.get_by_role("tab", name="Profile")).to_have_attribute("aria-selected", "true")
    screenshot(page, "profile")
    assert_accessible(page)

    page.get_by_role("tab", name="Security").click()
    security = page.locator("#panel-security")
    expect(security).to_be_visible()
    expect(page.locator("#sessions-list")).to_contain_text("This device")
    expect(page.locator("#sessions-list")).to_contain_text("With password")  # how the session signed in
    text = security.inner_text()
    for word in ["Password", "Change Password", "Two-Factor Authentication", "Authenticator App", "Enabled",
                 "Disable", "Security Keys & Passkeys", "Add Key", "YubiKey 5", "Recovery Codes",
                 "10 recovery codes remaining", "Regenerate", "Sessions", "This device"]:
        assert word in text, word
    expect(page.get_by_role("button", name="Remove YubiKey 5")).to_be_visible()
    screenshot(page, "profile-security")
    assert_accessible(page)
    assert_fits_phone(page)
    screenshot(page, "profile-security-phone")
    page_watch.assert_clean()


def test_title_and_mobile_only_when_set_and_the_admin_notice(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("plain", phone="+44 20 7946 0999")  # neither title nor mobile
    submit_email_then_password(page, real.base_url, ADMIN, DEMO_PASSWORD)
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)
    # The admin starts viewing with this browser's session, as the admin console does.
    start_viewing(page, user.id, "Ticket 4711: checking the account details")
    page.goto(real.url("/portal/profile"))
    wait_ready(page)
    info = page.locator("#account-info")
    expect(info).to_contain_text("Company")
    expect(info).not_to_contain_text("Title")
    expect(info).not_to_contain_text("Mobile")
    notice = page.locator("#impersonation-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Any changes you make will affect the real account.")
    screenshot(page, "profile-admin-viewing")
    assert_accessible(page)
    page.get_by_role("button", name="Stop Viewing").click()
    expect(page.locator("#profile-email")).to_have_text(ADMIN)
    page_watch.assert_clean()


def test_edit_profile_confirms_and_shows_field_errors(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("edit")
    open_profile(page, real, user)
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("readonly", "")
    page.get_by_label("Name").fill("Dana Demo")
    page.get_by_label("Phone").fill("+44 20 7946 0000")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#profile-saved")).to_have_text("Your profile has been updated.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dana Demo")

    async def stored(client: Portal) -> Any:
        return (await client.get("/api/profile"))[1]

    saved = real.call(user.email, user.password, stored)
    assert (saved["name"], saved["phone"]) == ("Dana Demo", "+44 20 7946 0000")

    page_watch.allow(r"status of 422")
    page.get_by_label("Phone").fill("not a phone")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#profile-phone-input-error")).to_have_text(
        "Enter a valid phone number in international format, e.g. +44 20 7946 0018.")
    expect(page.get_by_label("Phone")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Phone")).to_be_focused()
    page_watch.assert_clean()


def test_enable_the_authenticator_app_and_see_the_codes_once(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("codes")
    open_profile(page, real, user)
    page.get_by_role("tab", name="Security").click()
    expect(page.locator("#totp-badge")).to_have_text("Disabled")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_alt_text("QR code for setting up your authenticator app")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()

    dialog = page.get_by_role("dialog", name="Save your recovery codes")
    expect(dialog).to_be_visible()
    codes = dialog.locator("li").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    expect(dialog.get_by_role("button", name="Copy Codes")).to_be_visible()
    screenshot(page, "recovery-codes")
    assert_accessible(page)
    page.keyboard.press("Escape")  # the codes stay until the person says they saved them
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="I've Saved These").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#totp-badge")).to_have_text("Enabled")
    expect(page.locator("#recovery-remaining")).to_have_text("10 recovery codes remaining")

    # The codes shown are the account's: one of them completes a sign-in (and is spent).
    async def sign_in_with_code(client: Portal) -> Any:
        return await client.post("/api/auth/login/recovery-code", {"code": codes[3]})

    async def password_then_code() -> Any:
        client = Portal(real.base_url)
        try:
            answer = await client.login(user.email, user.password)
            assert answer["state"] == "second_factor_required", answer
            return await sign_in_with_code(client)
        finally:
            await client.close()

    status, answer = real.api.run(password_then_code)
    assert status == 200 and answer["recovery_codes_remaining"] == 9, answer
    page_watch.assert_clean()


def test_add_a_passkey_then_remove_it_after_reauth(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("passkey-page")
    cdp, authenticator = add_virtual_authenticator(page)
    open_profile(page, real, user)
    page.get_by_role("tab", name="Security").click()
    page.get_by_role("button", name="Add Key").click()
    name_dialog = page.get_by_role("dialog", name="Name this key")
    expect(name_dialog).to_be_visible()
    name_dialog.get_by_label("Key name").fill("Laptop passkey")
    name_dialog.get_by_role("button", name="Save Key").click()
    page.get_by_role("dialog", name="Save your recovery codes").get_by_role("button", name="I've Saved These").click()
    expect(page.locator("#keys-list")).to_contain_text("Laptop passkey")
    expect(page.locator("#keys-list")).to_contain_text("Passkey")
    assert len(virtual_credentials(cdp, authenticator)) == 1
    [key] = api_in_page(page, "/api/mfa")["security_keys"]
    assert key["passkey"] is True

    real.age_browser_session(page)  # removing a key now needs the password again
    page_watch.allow(r"status of 403")
    page.get_by_role("button", name="Remove Laptop passkey").click()
    confirm = page.get_by_role("dialog", name="Remove security key?")
    confirm.get_by_role("button", name="Remove").click()
    reauth = page.get_by_role("dialog", name="Confirm it's you")
    expect(reauth).to_be_visible()
    expect(reauth.get_by_role("button", name="Continue with your company")).to_have_count(0)  # no SSO here
    reauth.get_by_label("Password").fill(user.password)
    reauth.get_by_role("button", name="Confirm").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    expect(page.get_by_role("button", name="Add Key")).to_be_focused()
    assert api_in_page(page, "/api/mfa")["security_keys"] == []
    page_watch.assert_clean()


def test_the_csp_watch_catches_inline_script(page: Page, page_watch: PageWatch, real: Real) -> None:
    """Proves the CSP check above is not vacuous: nginx's policy blocks an inline script and we see it."""
    page.goto(real.url("/portal/login"))
    wait_ready(page)
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.x = 1';"
                  " document.body.append(s); }")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.x") is None
    assert page_watch.csp_violations()


def test_profile_without_a_session_goes_to_sign_in(page: Page, page_watch: PageWatch, real: Real) -> None:
    page_watch.allow(r"status of 401")
    page.goto(real.url("/portal/profile"))
    page.wait_for_url(re.compile(r"/portal/login$"))
    wait_ready(page)
    page_watch.assert_clean()
