"""The portal's flows in headless Chromium through nginx against the REAL stack (`portal_stack`).

Each test creates its own user (an MSP admin invites them through the API, the invitation email is
read from the mail sink's directory and accepted), so the tests are independent of each other and of
the demo accounts. Every page state is screenshotted (test-output/screenshots/real-*.png) and scanned
with axe-core; console errors and CSP violations fail the test.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.helpers import (
    PageWatch,
    add_virtual_authenticator,
    submit_email_then_password,
    virtual_credentials,
    wait_ready,
)
from tests.browser.real_stack import (  # noqa: F401 (ApiRunner, PASSWORD: re-exported)
    ADMIN,
    PASSWORD,
    ApiRunner,
    Real,
    User,
    check,
    start_viewing,
)
from tests.support.portal_client import link_token
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow


# ---------- browser steps ----------

def open_login(page: Page, real: Real) -> None:
    page.goto(real.url("/portal/login"))
    wait_ready(page)


def submit_password(page: Page, real: Real, email: str, password: str) -> None:
    submit_email_then_password(page, real.base_url, email, password)


def on_profile(page: Page) -> None:
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)


def sign_in(page: Page, real: Real, user: User, password: str | None = None) -> None:
    submit_password(page, real, user.email, password or user.password)
    on_profile(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/portal/login$"))
    wait_ready(page)


def security_tab(page: Page) -> None:
    page.get_by_role("tab", name="Security").click()
    expect(page.locator("#panel-security")).to_be_visible()


def save_codes(page: Page, name: str) -> list[str]:
    """The recovery-codes dialog (shown once): read the codes, check the page, close it."""
    dialog = page.get_by_role("dialog", name="Save your recovery codes")
    expect(dialog).to_be_visible()
    codes = dialog.locator("li").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    check(page, name)
    dialog.get_by_role("button", name="I've Saved These").click()
    expect(dialog).to_be_hidden()
    return codes


def second_factor_step(page: Page) -> None:
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()


def choose_factor(page: Page, name: str) -> None:
    chip = page.get_by_role("button", name=name, exact=True)
    if chip.is_visible():
        chip.click()


# ---------- the flows ----------

def test_sign_in_and_edit_name_and_phone(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("editor")
    open_login(page, real)
    check(page, "login")
    page_watch.allow(r"status of 401")
    submit_password(page, real, user.email, "not the password at all")
    expect(page.locator("#login-form .form-error")).to_be_visible()
    check(page, "login-wrong-password")

    sign_in(page, real, user)
    expect(page.locator("#profile-email")).to_have_text(user.email)
    expect(page.locator("#avatar")).to_have_text(user.name[0])
    info = page.locator("#account-info")
    expect(info).to_contain_text("Company")
    expect(info).to_contain_text("Finance Lead")
    expect(info).not_to_contain_text("Mobile")
    expect(page.locator("#impersonation-notice")).to_be_hidden()
    expect(page.get_by_label("Email", exact=True)).to_have_value(user.email)
    check(page, "profile")

    page.get_by_label("Name").fill("Robin Renamed")
    page.get_by_label("Phone").fill("+44 20 7946 0123")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#profile-saved")).to_have_text("Your profile has been updated.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Robin Renamed")
    check(page, "profile-saved")

    page_watch.allow(r"status of 422")
    page.get_by_label("Phone").fill("not a phone")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#profile-phone-input-error")).to_be_visible()
    expect(page.get_by_label("Phone")).to_have_attribute("aria-invalid", "true")
    check(page, "profile-invalid-phone")

    page.reload()
    wait_ready(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Robin Renamed")
    expect(page.get_by_label("Phone")).to_have_value("+44 20 7946 0123")
    page_watch.assert_clean()


def test_change_password_then_sign_in_with_the_new_one(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("changer")
    new_password = "another long passphrase 12"
    sign_in(page, real, user)
    security_tab(page)
    check(page, "security")
    page.get_by_role("button", name="Change Password").click()
    form = page.locator("#password-form")
    expect(form).to_be_visible()
    page_watch.allow(r"status of 422")
    form.get_by_label("Current Password").fill("wrong current password")
    form.get_by_label("New Password", exact=True).fill(new_password)
    form.get_by_label("Confirm New Password").fill(new_password)
    form.get_by_role("button", name="Change Password").click()
    expect(page.locator("#current-password-error")).to_be_visible()
    check(page, "change-password-wrong-current")

    form.get_by_label("Current Password").fill(user.password)
    form.get_by_role("button", name="Change Password").click()
    expect(page.locator("#password-changed")).to_have_text("Your password has been changed.")
    expect(form).to_be_hidden()
    check(page, "password-changed")
    real.wait_for_mail(user.email, "profile.password_changed")

    sign_out(page)
    page_watch.allow(r"status of 401")
    submit_password(page, real, user.email, user.password)
    expect(page.locator("#login-form .form-error")).to_be_visible()
    sign_in(page, real, user, new_password)
    page_watch.assert_clean()


def test_forgot_password_reset_by_email_then_sign_in(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("forgetful")
    new_password = "reset via the emailed link 3"
    open_login(page, real)
    page.get_by_role("link", name="Forgot password").click()
    page.wait_for_url(re.compile(r"/portal/forgot-password$"))
    wait_ready(page)
    check(page, "forgot-password")
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send Reset Link").click()
    expect(page.locator("#sent-text")).to_be_visible()
    check(page, "forgot-password-sent")

    [mail] = real.wait_for_mail(user.email, "profile.password_reset_requested")
    token = link_token(mail, "reset-password")
    page.goto(real.url(f"/portal/reset-password?token={token}"))
    wait_ready(page)
    check(page, "reset-password")
    page.get_by_label("New Password", exact=True).fill(new_password)
    page.get_by_label("Confirm New Password").fill(new_password)
    page.get_by_role("button", name="Set New Password").click()
    expect(page.locator("#done-step")).to_be_visible()
    check(page, "reset-password-done")

    # The link works once.
    page_watch.allow(r"status of 400")
    page.goto(real.url(f"/portal/reset-password?token={token}"))
    wait_ready(page)
    page.get_by_label("New Password", exact=True).fill(new_password + "x")
    page.get_by_label("Confirm New Password").fill(new_password + "x")
    page.get_by_role("button", name="Set New Password").click()
    expect(page.locator("#invalid-step")).to_be_visible()
    check(page, "reset-password-used-link")

    page.goto(real.url("/portal/login"))
    sign_in(page, real, user, new_password)
    page_watch.assert_clean()


def test_enable_the_authenticator_app_then_sign_in_with_a_code(page: Page, page_watch: PageWatch,
                                                               real: Real) -> None:
    user = real.new_user("totp")
    sign_in(page, real, user)
    security_tab(page)
    expect(page.locator("#totp-badge")).to_have_text("Disabled")
    expect(page.locator("#recovery-section")).to_be_hidden()
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_alt_text("QR code for setting up your authenticator app")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    check(page, "totp-setup")
    totp = pyotp.TOTP(secret)

    page_watch.allow(r"status of 422")
    wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    page.get_by_label("6-digit code").fill(wrong)
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#totp-verify-form .form-error, #totp-verify-code-error").first).to_be_visible()

    enabled_at = time.time()
    page.get_by_label("6-digit code").fill(totp.at(enabled_at))
    page.get_by_role("button", name="Verify").click()
    codes = save_codes(page, "totp-recovery-codes")
    expect(page.locator("#totp-badge")).to_have_text("Enabled")
    expect(page.locator("#recovery-remaining")).to_have_text("10 recovery codes remaining")
    check(page, "security-totp-enabled")
    real.wait_for_mail(user.email, "mfa.two_factor_enabled")

    # Shown once: after a reload the page has the count, never the codes.
    page.reload()
    wait_ready(page)
    text = page.locator("body").inner_text()
    assert not any(code in text for code in codes)

    sign_out(page)
    submit_password(page, real, user.email, user.password)
    second_factor_step(page)
    check(page, "login-second-factor")
    choose_factor(page, "Authenticator App")
    page_watch.allow(r"status of 401")
    page.get_by_label("Authentication code").fill(wrong)
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#totp-form .form-error")).to_be_visible()
    expect(page.get_by_label("Authentication code")).to_have_attribute("aria-invalid", "true")
    check(page, "login-wrong-totp")
    # The code of the step after the one used to enable: never a replay, and within the ±1 step window.
    page.get_by_label("Authentication code").fill(totp.at(enabled_at + 30))
    page.get_by_role("button", name="Verify").click()
    on_profile(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    page_watch.assert_clean()


def test_recovery_code_sign_in_regenerate_and_disable_two_factor(page: Page, page_watch: PageWatch,
                                                                  real: Real) -> None:
    user = real.new_user("recovery")
    _secret, codes = real.enable_totp(user)
    submit_password(page, real, user.email, user.password)
    second_factor_step(page)
    choose_factor(page, "Recovery Code")
    page.get_by_label("Recovery code", exact=True).fill(codes[0].upper())
    check(page, "login-recovery-code")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#codes-warning-text")).to_have_text("You have 9 recovery codes remaining.")
    check(page, "login-codes-remaining")
    page.get_by_role("link", name="Continue").click()
    on_profile(page)
    expect(page.locator("#panel-security")).to_be_visible()  # #security opens that tab
    expect(page.locator("#recovery-remaining")).to_have_text("9 recovery codes remaining")
    real.wait_for_mail(user.email, "mfa.recovery_code_used")

    page_watch.allow(r"status of 422")
    page.get_by_role("button", name="Regenerate").click()
    dialog = page.get_by_role("dialog", name="Regenerate recovery codes")
    dialog.get_by_label("Password").fill("not my password")
    dialog.get_by_role("button", name="Regenerate").click()
    expect(dialog.locator(".form-error, .field-error").first).to_be_visible()
    check(page, "regenerate-wrong-password")
    dialog.get_by_label("Password").fill(user.password)
    dialog.get_by_role("button", name="Regenerate").click()
    new_codes = save_codes(page, "regenerated-codes")
    assert not set(new_codes) & set(codes)
    expect(page.locator("#recovery-remaining")).to_have_text("10 recovery codes remaining")
    real.wait_for_mail(user.email, "mfa.recovery_codes_regenerated")

    page.get_by_role("button", name="Disable").click()
    dialog = page.get_by_role("dialog", name="Disable authenticator app")
    expect(dialog).to_be_visible()
    check(page, "disable-totp")
    dialog.get_by_label("Password").fill(user.password)
    dialog.get_by_role("button", name="Disable").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#totp-badge")).to_have_text("Disabled")
    expect(page.locator("#recovery-section")).to_be_hidden()
    check(page, "security-two-factor-off")
    real.wait_for_mail(user.email, "mfa.two_factor_disabled")

    # Two-factor is off: the password alone signs in again.
    sign_out(page)
    sign_in(page, real, user)
    page_watch.assert_clean()


def test_add_a_passkey_sign_in_with_it_then_remove_it(page: Page, context: BrowserContext,
                                                      page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("passkey")
    cdp, authenticator = add_virtual_authenticator(page)
    sign_in(page, real, user)
    security_tab(page)
    page.get_by_role("button", name="Add Key").click()
    name_dialog = page.get_by_role("dialog", name="Name this key")
    expect(name_dialog).to_be_visible()
    check(page, "name-key")
    name_dialog.get_by_label("Key name").fill("Laptop passkey")
    name_dialog.get_by_role("button", name="Save Key").click()
    save_codes(page, "passkey-recovery-codes")
    keys = page.locator("#keys-list")
    expect(keys).to_contain_text("Laptop passkey")
    expect(keys).to_contain_text("Passkey")
    expect(keys).to_contain_text("Not used yet")
    check(page, "security-passkey")
    assert len(virtual_credentials(cdp, authenticator)) == 1
    real.wait_for_mail(user.email, "mfa.two_factor_enabled")

    sign_out(page)
    check(page, "login-passkey")
    page.get_by_role("button", name="Sign in with a passkey").click()
    on_profile(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    security_tab(page)
    expect(keys).to_contain_text("Last used")

    page.get_by_role("button", name="Remove Laptop passkey").click()
    confirm = page.get_by_role("dialog", name="Remove security key?")
    expect(confirm).to_be_visible()
    check(page, "remove-key")
    confirm.get_by_role("button", name="Remove").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    expect(page.locator("#keys-status")).to_contain_text("Removed")
    expect(page.locator("#recovery-section")).to_be_hidden()  # the last factor: two-factor is off
    check(page, "security-key-removed")
    real.wait_for_mail(user.email, "mfa.two_factor_disabled")
    page_watch.assert_clean()


def test_security_key_as_the_second_factor(page: Page, page_watch: PageWatch, real: Real) -> None:
    """A key that is not a passkey (no resident key): a second factor after the password."""
    user = real.new_user("seckey")
    cdp, authenticator = add_virtual_authenticator(page, resident_key=False)
    sign_in(page, real, user)
    security_tab(page)
    page.get_by_role("button", name="Add Key").click()
    name_dialog = page.get_by_role("dialog", name="Name this key")
    expect(name_dialog.get_by_label("Key name")).to_have_value("Security key")
    name_dialog.get_by_label("Key name").fill("YubiKey 5")
    name_dialog.get_by_role("button", name="Save Key").click()
    save_codes(page, "security-key-recovery-codes")
    keys = page.locator("#keys-list")
    expect(keys).to_contain_text("YubiKey 5")
    expect(keys).not_to_contain_text("Passkey")
    check(page, "security-key-added")
    [credential] = virtual_credentials(cdp, authenticator)
    assert credential["isResidentCredential"] is False

    sign_out(page)
    submit_password(page, real, user.email, user.password)
    second_factor_step(page)
    choose_factor(page, "Security Key")
    check(page, "login-security-key")
    page.get_by_role("button", name="Use Security Key").click()
    on_profile(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    page_watch.assert_clean()


def age_browser_session(page: Page, real: Real, portal_stack: Any = None) -> None:
    """Make this browser's session a sign-in of 11 minutes ago, never re-authenticated (in the stack's DB)."""
    real.age_browser_session(page)


def confirm_its_me(page: Page, real: Real, user: User, name: str) -> None:
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    check(page, name)
    dialog.get_by_label("Password").fill(user.password)
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()


def test_adding_a_factor_long_after_sign_in_asks_to_confirm_its_you(page: Page, page_watch: PageWatch, real: Real,
                                                                     portal_stack: Any) -> None:
    """Security issue #13: adding a factor needs a recent sign-in; the page asks for the password, then goes on."""
    user = real.new_user("stale")
    cdp, authenticator = add_virtual_authenticator(page, resident_key=False)
    sign_in(page, real, user)
    security_tab(page)
    page_watch.allow(r"status of 403")

    age_browser_session(page, real, portal_stack)
    page.get_by_role("button", name="Enable").click()
    confirm_its_me(page, real, user, "reauth-totp")
    expect(page.get_by_alt_text("QR code for setting up your authenticator app")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    save_codes(page, "reauth-totp-codes")
    expect(page.locator("#totp-badge")).to_have_text("Enabled")

    # Asked before the browser's key ceremony: exactly one credential is created, and it is the one saved.
    age_browser_session(page, real, portal_stack)
    page.get_by_role("button", name="Add Key").click()
    confirm_its_me(page, real, user, "reauth-key")
    name_dialog = page.get_by_role("dialog", name="Name this key")
    name_dialog.get_by_label("Key name").fill("Desk key")
    name_dialog.get_by_role("button", name="Save Key").click()
    expect(name_dialog).to_be_hidden()
    expect(page.locator("#keys-list")).to_contain_text("Desk key")
    assert len(virtual_credentials(cdp, authenticator)) == 1
    check(page, "reauth-key-added")
    page_watch.assert_clean()


def test_msp_admin_impersonates_and_the_notice_shows(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("viewed")
    submit_password(page, real, ADMIN, DEMO_PASSWORD)
    on_profile(page)
    expect(page.locator("#impersonation-notice")).to_be_hidden()
    # Start viewing through the API, with this browser's session (as an admin console would).
    start_viewing(page, user.id, "Ticket 4711: phone number missing")
    page.goto(real.url("/portal/profile"))
    wait_ready(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    notice = page.locator("#impersonation-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Any changes you make will affect the real account.")
    expect(notice).to_contain_text(ADMIN)
    check(page, "profile-admin-viewing")
    real.wait_for_mail(user.email, "profile.impersonation_started")

    # Security changes are refused while viewing; the page says so.
    page_watch.allow(r"status of 403")
    security_tab(page)
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("#mfa-error")).to_be_visible()
    expect(page.locator("#totp-setup")).to_be_hidden()
    page.get_by_role("button", name="Change Password").click()
    form = page.locator("#password-form")
    form.get_by_label("Current Password").fill(user.password)
    form.get_by_label("New Password", exact=True).fill("an admin must not set this")
    form.get_by_label("Confirm New Password").fill("an admin must not set this")
    form.get_by_role("button", name="Change Password").click()
    expect(form.locator(".form-error")).to_be_visible()
    expect(page.locator("#password-changed")).to_be_hidden()
    check(page, "security-admin-viewing")

    page.get_by_role("button", name="Stop Viewing").click()
    page.wait_for_load_state()
    wait_ready(page)
    expect(page.locator("#impersonation-notice")).to_be_hidden()
    expect(page.locator("#profile-email")).to_have_text(ADMIN)
    page_watch.assert_clean()
