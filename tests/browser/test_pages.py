"""Every portal page through nginx in headless Chromium: the product's words, no console errors or CSP
violations, a screenshot (desktop and phone), and an axe-core scan with no serious/critical finding."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import FakePortal
from tests.browser.fake_portal import EMAIL, PASSWORD
from tests.browser.helpers import (
    PHONE,
    PageWatch,
    add_virtual_authenticator,
    assert_accessible,
    screenshot,
    virtual_credentials,
    wait_ready,
)

PUBLIC_PAGES = {
    "login": ("/portal/login", ["Sign in", "Email", "Password", "Forgot password", "Sign in with a passkey"]),
    "forgot-password": ("/portal/forgot-password", ["Forgot password", "Email", "Send Reset Link"]),
    "reset-password": ("/portal/reset-password?token=valid-token",
                       ["Reset your password", "New Password", "Confirm New Password"]),
    "accept-invite": ("/portal/accept-invite?token=valid-token",
                      ["Set up your account", "New Password", "Confirm New Password", "Set Password"]),
    "not-me": ("/portal/not-me?token=valid-token", ["Secure My Account"]),
}


def sign_in(page: Page, portal: FakePortal) -> None:
    page.goto(f"{portal.base_url}/portal/login")
    wait_ready(page)
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def open_profile(page: Page, portal: FakePortal) -> None:
    sign_in(page, portal)
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)


@pytest.mark.parametrize("name", list(PUBLIC_PAGES))
def test_public_page(page: Page, page_watch: PageWatch, portal: FakePortal, name: str) -> None:
    path, words = PUBLIC_PAGES[name]
    page.goto(portal.base_url + path)
    wait_ready(page)
    text = page.locator("body").inner_text()
    for word in words:
        assert word in text, (name, word)
    screenshot(page, name)
    assert_accessible(page)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal scroll on a phone"
    screenshot(page, f"{name}-phone")
    page_watch.assert_clean()


def test_profile_page_with_everything_on(page: Page, page_watch: PageWatch, portal: FakePortal) -> None:
    portal.state.totp_secret = pyotp.random_base32()
    portal.state.keys.append({"id": "key-1", "name": "YubiKey 5", "passkey": False,
                              "created_at": "2026-01-02T10:00:00Z", "last_used_at": "2026-02-03T11:00:00Z"})
    portal.state.new_codes()
    portal.state.totp_secret_for_login = None
    page.goto(f"{portal.base_url}/portal/login")
    wait_ready(page)
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    screenshot(page, "login-second-factor")
    assert_accessible(page)
    page.get_by_label("Authentication code").fill(pyotp.TOTP(portal.state.totp_secret).now())
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
    text = security.inner_text()
    for word in ["Password", "Change Password", "Two-Factor Authentication", "Authenticator App", "Enabled",
                 "Disable", "Security Keys & Passkeys", "Add Key", "YubiKey 5", "Recovery Codes",
                 "10 recovery codes remaining", "Regenerate", "Sessions", "This device"]:
        assert word in text, word
    expect(page.get_by_role("button", name="Remove YubiKey 5")).to_be_visible()
    screenshot(page, "profile-security")
    assert_accessible(page)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal scroll on a phone"
    screenshot(page, "profile-security-phone")
    page_watch.assert_clean()


def test_title_and_mobile_only_when_set_and_the_admin_notice(page: Page, page_watch: PageWatch,
                                                             portal: FakePortal) -> None:
    portal.state.title = None
    portal.state.mobile = None
    portal.state.impersonator = {"id": "a1", "name": "Alice Admin", "email": "admin@msp.example"}
    open_profile(page, portal)
    info = page.locator("#account-info")
    expect(info).to_contain_text("Company")
    expect(info).not_to_contain_text("Title")
    expect(info).not_to_contain_text("Mobile")
    notice = page.locator("#impersonation-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Any changes you make will affect the real account.")
    screenshot(page, "profile-admin-viewing")
    assert_accessible(page)
    page_watch.assert_clean()


def test_edit_profile_confirms_and_shows_field_errors(page: Page, page_watch: PageWatch, portal: FakePortal) -> None:
    open_profile(page, portal)
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("readonly", "")
    page.get_by_label("Name").fill("Dana Demo")
    page.get_by_label("Phone").fill("+44 20 7946 0000")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#profile-saved")).to_have_text("Your profile has been updated.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dana Demo")
    assert portal.state.phone == "+44 20 7946 0000"

    page_watch.allow(r"status of 422")
    page.get_by_label("Phone").fill("not a phone")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#profile-phone-input-error")).to_have_text("Enter a valid phone number.")
    expect(page.get_by_label("Phone")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Phone")).to_be_focused()
    page_watch.assert_clean()


def test_enable_the_authenticator_app_and_see_the_codes_once(page: Page, page_watch: PageWatch,
                                                             portal: FakePortal) -> None:
    open_profile(page, portal)
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
    assert codes == portal.state.codes and len(codes) == 10
    expect(dialog.get_by_role("button", name="Copy Codes")).to_be_visible()
    screenshot(page, "recovery-codes")
    assert_accessible(page)
    page.keyboard.press("Escape")  # the codes stay until the person says they saved them
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="I've Saved These").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#totp-badge")).to_have_text("Enabled")
    expect(page.locator("#recovery-remaining")).to_have_text("10 recovery codes remaining")
    page_watch.assert_clean()


def test_add_a_passkey_then_remove_it_after_reauth(page: Page, page_watch: PageWatch, portal: FakePortal) -> None:
    cdp, authenticator = add_virtual_authenticator(page)
    portal.state.require_reauth_for_delete = True
    open_profile(page, portal)
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
    assert portal.state.keys[0]["passkey"] is True

    page_watch.allow(r"status of 403")
    page.get_by_role("button", name="Remove Laptop passkey").click()
    confirm = page.get_by_role("dialog", name="Remove security key?")
    confirm.get_by_role("button", name="Remove").click()
    reauth = page.get_by_role("dialog", name="Confirm it's you")
    expect(reauth).to_be_visible()
    reauth.get_by_label("Password").fill(PASSWORD)
    reauth.get_by_role("button", name="Confirm").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    expect(page.get_by_role("button", name="Add Key")).to_be_focused()
    assert portal.state.keys == []
    page_watch.assert_clean()


def test_the_csp_watch_catches_inline_script(page: Page, page_watch: PageWatch, portal: FakePortal) -> None:
    """Proves the CSP check above is not vacuous: nginx's policy blocks an inline script and we see it."""
    page.goto(f"{portal.base_url}/portal/login")
    wait_ready(page)
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.x = 1';"
                  " document.body.append(s); }")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.x") is None
    assert page_watch.csp_violations()


def test_profile_without_a_session_goes_to_sign_in(page: Page, page_watch: PageWatch, portal: FakePortal) -> None:
    page_watch.allow(r"status of 401")
    page.goto(f"{portal.base_url}/portal/profile")
    page.wait_for_url(re.compile(r"/portal/login$"))
    wait_ready(page)
    page_watch.assert_clean()
