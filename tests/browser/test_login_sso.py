"""The login page, email first (issue #14), in Chromium against the real stack and a real OpenID provider
run by the test (tests/support/oidc_provider.py): the address's domain decides between password, the
company's single sign-on, or both; the provider's round trip signs in, leaves a pending second factor,
or fails into a plain message; an account without a password is offered "Set a password" and confirms
sensitive changes with its company's sign-in."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    PageWatch,
    add_virtual_authenticator,
    assert_fits_phone,
    screenshot,
    submit_email_then_password,
    wait_ready,
)
from tests.browser.real_stack import Real, User, check
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, Login, OidcProvider
from tests.support.portal_client import Portal

pytestmark = pytest.mark.slow

SSO_FAILED = "Single sign-on didn't work. Try again or contact your administrator."


@pytest.fixture(scope="module")
def idp(real: Real) -> Iterator[OidcProvider]:
    provider = real.api.run(lambda: OidcProvider().start())
    yield provider
    real.api.run(provider.close)


def sso_client(real: Real, idp: OidcProvider, *, passwords_too: bool = True) -> tuple[str, str]:
    """A client whose domain (its own, new) signs in with the test's provider; returns (client id, domain)."""
    tag = uuid.uuid4().hex[:8]
    domain = f"sso-{tag}.example"

    async def configure(admin: Portal) -> str:
        status, client = await admin.post("/api/admin/clients", {"name": f"SSO Client {tag}"})
        assert status == 201, client
        status, body, _ = await admin.request("PUT", f"/api/admin/clients/{client['id']}/sso", {
            "issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "email_domains": [domain], "password_sign_in": "allowed" if passwords_too else "disabled",
            "trust_idp_mfa": False})
        assert status == 200, body
        return str(client["id"])

    return real.as_admin(configure), domain


def next_sign_in_is(idp: OidcProvider, email: str) -> None:
    """The provider approves the next authorization for this person (a verified address)."""
    idp.faults.authorize_error = None
    idp.next_login = Login(f"sub-{email}", {"email": email, "email_verified": True})


def continue_with(page: Page, real: Real, email: str) -> None:
    page.goto(real.url("/portal/login"))
    wait_ready(page)
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Continue", exact=True).click()


def on_profile(page: Page, user_name: str) -> None:
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user_name)


def test_a_password_domain_offers_the_password_and_a_different_email_goes_back(
        page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("pw-only")
    continue_with(page, real, user.email)
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    expect(page.get_by_role("button", name="Sign in with your company")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()  # first step only
    expect(page.get_by_label("Email")).to_have_attribute("readonly", "")
    check(page, "login-password-step")
    assert_fits_phone(page)
    screenshot(page, "real-login-password-step-phone")

    page.get_by_role("button", name="Use a different email").click()
    expect(page.get_by_label("Password", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Continue", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    expect(page.get_by_label("Email")).not_to_have_attribute("readonly", "")

    submit_email_then_password(page, real.base_url, user.email, user.password)
    on_profile(page, user.name)
    page_watch.assert_clean()


def test_both_methods_then_single_sign_on_signs_in(page: Page, page_watch: PageWatch, real: Real,
                                                  idp: OidcProvider) -> None:
    client_id, domain = sso_client(real, idp)
    user = real.new_user("both", client_id=client_id, domain=domain)
    continue_with(page, real, user.email)
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    company = page.get_by_role("button", name="Sign in with your company")
    expect(company).to_be_visible()
    expect(page.locator("#sso-divider")).to_be_visible()
    check(page, "login-both-methods")

    next_sign_in_is(idp, user.email)
    company.click()
    on_profile(page, user.name)
    assert idp.authorize_requests[-1]["login_hint"] == user.email
    page.get_by_role("tab", name="Security").click()
    expect(page.locator("#sso-also")).to_have_text(f"You can also sign in with single sign-on ({idp.issuer}).")
    expect(page.get_by_role("button", name="Change Password")).to_be_visible()

    # Re-authentication offers both: the password, or the company's sign-in.
    real.age_browser_session(page)
    page_watch.allow(r"status of 403")
    page.get_by_role("button", name="Enable").click()
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog.get_by_label("Password")).to_be_visible()
    expect(dialog.get_by_role("button", name="Continue with your company")).to_be_visible()
    check(page, "reauth-password-or-sso")
    assert_fits_phone(page)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Enable")).to_be_focused()
    page_watch.assert_clean()


def test_an_sso_only_account_sets_a_password_by_email_and_confirms_with_its_company(
        page: Page, page_watch: PageWatch, real: Real, idp: OidcProvider) -> None:
    client_id, domain = sso_client(real, idp, passwords_too=False)
    invited, _token = real.invite("sso-only", client_id=client_id, domain=domain)  # never sets a password
    continue_with(page, real, invited["email"])
    company = page.get_by_role("button", name="Sign in with your company")
    expect(company).to_be_focused()
    expect(page.get_by_label("Password", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_hidden()
    check(page, "login-sso-only")
    assert_fits_phone(page)
    screenshot(page, "real-login-sso-only-phone")

    next_sign_in_is(idp, invited["email"])
    page.keyboard.press("Enter")  # the company's button is the form's action too
    on_profile(page, invited["name"])
    page.get_by_role("tab", name="Security").click()
    expect(page.locator("#password-sso-text")).to_have_text(
        f"Signed in with single sign-on ({idp.issuer}). Your account has no portal password.")
    expect(page.get_by_role("link", name="Set a password")).to_have_attribute("href", "/portal/forgot-password")
    expect(page.get_by_role("button", name="Change Password")).to_be_hidden()
    page.get_by_role("button", name="set a password").click()  # the activity hint leads to the link
    expect(page.get_by_role("link", name="Set a password")).to_be_focused()
    check(page, "security-sso-only")

    # Adding a key long after signing in: confirmed with the company's sign-in, then back here to go on.
    add_virtual_authenticator(page)
    real.age_browser_session(page)
    page_watch.allow(r"status of 403")
    page.get_by_role("button", name="Add Key").click()
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Password")).to_have_count(0)
    check(page, "reauth-sso-only")
    next_sign_in_is(idp, invited["email"])
    with page.expect_navigation(url=re.compile(r"/portal/profile\?reauth=sso")):
        dialog.get_by_role("button", name="Continue with your company").click()
    wait_ready(page)
    assert idp.authorize_requests[-1].get("max_age") == "0"
    expect(page.locator("#page-notice")).to_contain_text("You've confirmed it's you.")
    expect(page.locator("#panel-security")).to_be_visible()
    assert "reauth=" not in page.url
    page.get_by_role("button", name="Add Key").click()
    name_dialog = page.get_by_role("dialog", name="Name this key")
    name_dialog.get_by_role("button", name="Save Key").click()
    page.get_by_role("dialog", name="Save your recovery codes").get_by_role("button", name="I've Saved These").click()
    expect(page.locator("#keys-list")).to_contain_text("Passkey")
    page_watch.assert_clean()


def test_sso_then_the_second_factor_on_the_login_page(page: Page, page_watch: PageWatch, real: Real,
                                                      idp: OidcProvider) -> None:
    client_id, domain = sso_client(real, idp)
    user: User = real.new_user("sso-2fa", client_id=client_id, domain=domain)
    secret, _codes = real.enable_totp(user)
    continue_with(page, real, user.email)
    next_sign_in_is(idp, user.email)
    page.get_by_role("button", name="Sign in with your company").click()
    page.wait_for_url(re.compile(r"/portal/login\?step=second-factor"))
    wait_ready(page)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    expect(page.get_by_role("button", name="Recovery Code", exact=True)).to_be_visible()
    check(page, "login-sso-second-factor")
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    on_profile(page, user.name)
    page_watch.assert_clean()


def test_a_failed_single_sign_on_says_so_plainly(page: Page, page_watch: PageWatch, real: Real,
                                                 idp: OidcProvider) -> None:
    client_id, domain = sso_client(real, idp)
    user = real.new_user("sso-fails", client_id=client_id, domain=domain)
    continue_with(page, real, user.email)
    idp.faults.authorize_error = "access_denied"  # the provider refuses: the callback fails
    try:
        page.get_by_role("button", name="Sign in with your company").click()
        page.wait_for_url(re.compile(r"/portal/login\?error=sso"))
        wait_ready(page)
    finally:
        idp.faults.authorize_error = None
    expect(page.locator("#signin-notice")).to_have_text(SSO_FAILED)
    expect(page.get_by_role("button", name="Continue", exact=True)).to_be_visible()
    check(page, "login-sso-failed")
    # Password users are unaffected.
    submit_email_then_password(page, real.base_url, user.email, user.password)
    on_profile(page, user.name)
    page_watch.assert_clean()


def test_a_second_factor_link_without_a_pending_sign_in_starts_over(page: Page, page_watch: PageWatch,
                                                                    real: Real) -> None:
    page.goto(real.url("/portal/login?step=second-factor"))
    wait_ready(page)
    expect(page.locator("#signin-notice")).to_have_text("Your sign-in has expired. Please sign in again.")
    expect(page.locator("#second-factor-step")).to_be_hidden()
    expect(page.get_by_label("Email")).to_be_focused()
    assert page.url.endswith("/portal/login")
    page_watch.assert_clean()


