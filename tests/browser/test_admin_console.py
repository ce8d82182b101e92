"""The MSP admin console (issue #15) in headless Chromium through nginx, against the real stack: the clients
page (search, counts, create), a client's page (users, invite, resend, its single sign-on section), a user's
page (edit, address change with in-place re-authentication, view as, two-factor reset, deactivate and
reactivate, the audit timeline), the two-factor banner, and a client user refused with the 403 page.

Every state is screenshotted (test-output/screenshots/admin-*.png) and scanned with axe-core (no serious or
critical finding), the pages also at phone width; console errors and CSP violations fail a test.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.admin_support import (
    admin_api,
    api_as,
    check,
    open_client,
    open_console,
    open_user,
    sign_in,
    user_row,
)
from tests.browser.helpers import PageWatch, add_virtual_authenticator, virtual_credentials, wait_ready
from tests.browser.real_stack import ADMIN, PASSWORD, Real, User
from tests.support.portal_client import Portal, link_token
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow


def until(what: str, probe: Callable[[], Any], timeout: float = 20) -> Any:
    """Asks `probe` again until it answers something true (each ask is a round trip to the stack)."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()):
        assert time.monotonic() < deadline, f"never: {what}"
    return answer


def two_factor_on(real: Real, user_id: str) -> bool:
    status, user = admin_api(real, "GET", f"/api/admin/users/{user_id}")
    return status == 200 and user["two_factor_enabled"]


def test_clients_page_creates_searches_and_shows_adoption(page: Page, page_watch: PageWatch, real: Real) -> None:
    tag = uuid.uuid4().hex[:8]
    sign_in(page, real)
    open_console(page, real)
    expect(page.get_by_role("heading", level=1)).to_have_text("Clients")
    expect(page.locator("#two-factor-banner")).to_be_visible()  # the demo admin has no two-factor
    expect(page.locator("#two-factor-banner")).to_contain_text("Turn it on")

    page.get_by_label("Client name").fill(f"Harbour Freight {tag}")
    page.get_by_role("button", name="Create Client").click()
    expect(page.locator("#create-status")).to_contain_text(f"Harbour Freight {tag}")
    [client] = [c for c in admin_api(real, "GET", "/api/admin/clients")[1] if c["name"] == f"Harbour Freight {tag}"]
    with_app = real.new_user("adopter", client_id=client["id"])
    real.new_user("holdout", client_id=client["id"])
    real.enable_totp(with_app)
    until("the two-factor projection", lambda: two_factor_on(real, with_app.id))

    page.get_by_label("Search clients").fill(tag)
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#clients-body tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("2")
    expect(rows.first).to_contain_text("50% (1 of 2)")
    check(page, "clients", phone=True)
    page.get_by_label("Search clients").fill(f"nothing-like-{tag}")
    page.get_by_label("Search clients").press("Enter")
    expect(page.locator("#clients-status")).to_contain_text("No client matches")
    expect(rows).to_have_count(0)
    page.get_by_label("Search clients").fill(tag)
    page.get_by_label("Search clients").press("Enter")
    # The list's link (the "Created …" note above the list links to the same client: one link, one place).
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name=f"Harbour Freight {tag}").click()
    wait_ready(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Harbour Freight {tag}")
    expect(page.locator("#client-summary")).to_contain_text("2 users · Two-factor adoption: 50% (1 of 2)")
    page_watch.assert_clean()


def test_invite_resend_and_the_user_accepts_the_new_link(page: Page, page_watch: PageWatch, real: Real,
                                                          browser: Browser) -> None:
    tag = uuid.uuid4().hex[:8]
    client = real.client_named(f"Invites {tag}")
    email, name = f"new-starter-{tag}@client.example", f"New Starter {tag[:4]}"
    sign_in(page, real)
    open_client(page, real, client["id"])
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invites {tag}")
    expect(page.locator("#users-empty")).to_be_visible()
    check(page, "client-empty")

    form = page.locator("#invite-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Email", exact=True).fill(email)
    form.get_by_label("Title").fill("Office Manager")
    form.get_by_label("Mobile").fill("+44 20 7946 0555")
    form.get_by_role("button", name="Send Invitation").click()
    expect(page.locator("#invite-status")).to_contain_text(f"Invitation sent to {email}")
    row = user_row(page, email)
    expect(row).to_contain_text("Invitation pending")
    expect(row).to_contain_text("Office Manager")
    expect(row).to_contain_text("Never")
    [first] = real.wait_for_mail(email, "profile.user_invited")
    check(page, "client-invited", phone=True)

    row.get_by_role("button", name=f"Resend invitation to {name}").click()
    expect(page.locator("#users-status")).to_contain_text("The earlier link no longer works")
    mails = real.wait_for_mail(email, "profile.user_invited", count=2)
    old = link_token(first, "accept-invite")
    [new] = [t for t in (link_token(m, "accept-invite") for m in mails) if t != old]

    invitee = browser.new_context(locale="en-GB", timezone_id="UTC")
    try:
        accept = invitee.new_page()
        for token, outcome in ((old, "#invalid-step"), (new, "#done-step")):
            accept.goto(real.url(f"/portal/accept-invite?token={token}"))
            wait_ready(accept)
            accept.get_by_label("New Password", exact=True).fill(PASSWORD)
            accept.get_by_label("Confirm New Password").fill(PASSWORD)
            accept.get_by_role("button", name="Set Password").click()
            expect(accept.locator(outcome)).to_be_visible()
    finally:
        invitee.close()
    page.reload()
    wait_ready(page)
    expect(user_row(page, email)).to_contain_text("Active")
    expect(user_row(page, email).get_by_role("button")).to_have_count(0)
    page_watch.allow(r"status of 400")
    page_watch.assert_clean()


def test_user_page_edits_fields_and_changes_the_address_after_reauthentication(
        page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("edited")
    sign_in(page, real)
    open_user(page, real, user.id)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    expect(page.locator("#account-details")).to_contain_text("Accepted")
    check(page, "user", phone=True)

    form = page.locator("#edit-form")
    form.get_by_label("Title").fill("Head of Finance")
    form.get_by_label("Mobile").fill("+44 20 7946 0777")
    form.get_by_role("button", name="Save Changes").click()
    expect(page.locator("#edit-status")).to_have_text("Saved.")
    status, profile = api_as(real, user, "GET", "/api/profile")
    assert status == 200 and (profile["title"], profile["mobile"]) == ("Head of Finance", "+44 20 7946 0777")

    real.age_browser_session(page)  # the admin's sign-in is now 11 minutes old
    page_watch.allow(r"status of 403")  # the first try: reauth-required
    page_watch.allow(r"status of 422")  # the wrong password, refused on the field
    moved = user.email.replace("@", "-moved@")
    expect(form.get_by_text("the old address can undo the change")).to_be_visible()
    form.get_by_label("Sign-in email address").fill(moved)
    form.get_by_role("button", name="Save Changes").click()
    warning = page.get_by_role("dialog", name="Change the sign-in address?")
    expect(warning).to_contain_text(f"Both {user.email} and {moved} are emailed")
    check(page, "user-address-warning")
    warning.get_by_role("button", name="Change Address").click()
    reauth = page.get_by_role("dialog", name="Confirm it's you")
    expect(reauth).to_be_visible()
    check(page, "user-reauth")
    reauth.get_by_label("Password").fill("not my password 1")
    reauth.get_by_role("button", name="Confirm").click()
    expect(reauth.locator(".field-error")).to_be_visible()
    reauth.get_by_label("Password").fill(DEMO_PASSWORD)
    reauth.get_by_role("button", name="Confirm").click()
    expect(reauth).to_be_hidden()
    expect(page.locator("#edit-status")).to_contain_text(f"{moved} is the sign-in address now")
    expect(page.locator("#user-email")).to_have_text(moved)
    real.wait_for_mail(user.email, "profile.email_changed")
    real.wait_for_mail(moved, "profile.email_changed")
    page_watch.assert_clean()


def _admin_with_app_and_key(page: Page, real: Real) -> tuple[User, pyotp.TOTP, str]:
    """A second MSP admin (an accepted invitation, promoted in the database: no API makes admins) who signs in
    in this browser and, on the Security tab, adds a security key (the page's virtual authenticator) and an
    authenticator app; returns the admin, the app's codes and the code that enabled it (spent: its step is
    the last accepted one)."""
    admin = real.new_user("admin-with-factors", name="Morgan Admin")

    async def promote(conn: Any) -> str:
        return str(await conn.execute("UPDATE profile.users SET role = 'msp_admin', client_id = NULL WHERE id = $1",
                                      uuid.UUID(admin.id)))

    assert real.db(promote) == "UPDATE 1"
    sign_in(page, real, admin.email, admin.password)
    page.get_by_role("tab", name="Security").click()
    page.get_by_role("button", name="Add Key").click()
    name_dialog = page.get_by_role("dialog", name="Name this key")
    name_dialog.get_by_label("Key name").fill("Desk key")
    name_dialog.get_by_role("button", name="Save Key").click()
    codes = page.get_by_role("dialog", name="Save your recovery codes")
    codes.get_by_role("button", name="I've Saved These").click()
    expect(page.locator("#keys-list")).to_contain_text("Desk key")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_alt_text("QR code for setting up your authenticator app")).to_be_visible()
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    spent = totp.now()
    page.get_by_label("6-digit code").fill(spent)
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#totp-badge")).to_have_text("Enabled")
    again = page.get_by_role("dialog", name="Save your recovery codes")
    if again.is_visible():  # the page may show the codes again with the second factor
        again.get_by_role("button", name="I've Saved These").click()
    return admin, totp, spent


def _change_address_until_reauth(page: Page, real: Real, user: User) -> tuple[Locator, str]:
    """On `user`'s page, with the admin's sign-in aged past the re-auth window: change the address, accept
    the warning, and return the re-authentication dialog that opens (and the new address)."""
    open_user(page, real, user.id)
    real.age_browser_session(page)
    moved = user.email.replace("@", "-moved@")
    form = page.locator("#edit-form")
    form.get_by_label("Sign-in email address").fill(moved)
    form.get_by_role("button", name="Save Changes").click()
    page.get_by_role("dialog", name="Change the sign-in address?").get_by_role("button", name="Change Address").click()
    reauth = page.get_by_role("dialog", name="Confirm it's you")
    expect(reauth).to_be_visible()
    return reauth, moved


def test_an_admin_confirms_with_the_authenticator_app_or_the_security_key(
        page: Page, page_watch: PageWatch, real: Real) -> None:
    """The console's re-authentication offers an admin's own factors; a wrong or replayed code is refused on
    the field, a fresh one and the key each let the action go on."""
    cdp, authenticator = add_virtual_authenticator(page, resident_key=False)
    admin, totp, spent = _admin_with_app_and_key(page, real)
    page_watch.allow(r"status of 403")  # each first try: reauth-required
    page_watch.allow(r"status of 422")  # the refused codes

    first = real.new_user("moved-after-app")
    reauth, moved = _change_address_until_reauth(page, real, first)
    choices = reauth.get_by_role("group", name="Confirm with")
    for method in ("Password", "Authenticator app", "Security key"):
        expect(choices.get_by_label(method)).to_be_visible()
    choices.get_by_label("Authenticator app").check()
    code = reauth.get_by_label("6-digit code")
    expect(code).to_be_visible()
    check(page, "reauth-choices")
    # The code the app was enabled with: spent (not `totp.now()`, which is a fresh code once a 30 s step
    # boundary has passed since, as it did in one CI run).
    code.fill(spent)
    reauth.get_by_role("button", name="Confirm").click()
    expect(reauth.locator(".field-error")).to_be_visible()
    code.fill(totp.at(time.time() + 30))  # the next step's code: within the window, never used
    reauth.get_by_role("button", name="Confirm").click()
    expect(reauth).to_be_hidden()
    expect(page.locator("#user-email")).to_have_text(moved)

    second = real.new_user("moved-after-key")
    reauth, moved = _change_address_until_reauth(page, real, second)
    reauth.get_by_role("group", name="Confirm with").get_by_label("Security key").check()
    expect(reauth.get_by_label("6-digit code")).to_be_hidden()
    check(page, "reauth-key")
    reauth.get_by_role("button", name="Use Security Key").click()
    expect(reauth).to_be_hidden()
    expect(page.locator("#user-email")).to_have_text(moved)
    [credential] = virtual_credentials(cdp, authenticator)
    assert credential["signCount"] >= 1  # the key itself answered the re-authentication

    async def reauthentications(conn: Any) -> list[str]:
        rows = await conn.fetch("SELECT detail FROM profile.audit_log WHERE user_id = $1 AND type = 'reauthenticated' "
                                "ORDER BY id", uuid.UUID(admin.id))
        return [r["detail"] for r in rows]

    assert real.db(reauthentications) == ["totp", "webauthn"]
    page_watch.assert_clean()


def test_view_as_this_user_shows_the_notice_then_stops(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("viewed-by-admin")
    sign_in(page, real)
    open_user(page, real, user.id)
    page.get_by_role("button", name="View as This User").click()
    dialog = page.get_by_role("dialog", name=f"View as {user.name}")
    dialog.get_by_role("button", name="View Account").click()
    expect(dialog.locator(".field-error")).to_have_text("Give the reason for viewing this account.")
    check(page, "user-view-as-reason")
    dialog.get_by_label("Reason").fill("Ticket 5120: invoices missing")
    dialog.get_by_role("button", name="View Account").click()
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(user.name)
    notice = page.locator("#impersonation-notice")
    expect(notice).to_contain_text("Any changes you make will affect the real account.")
    [mail] = real.wait_for_mail(user.email, "profile.impersonation_started")
    assert "Ticket 5120" in mail.get_body(("plain",)).get_content()

    # The console stays open while viewing, with a bar to stop.
    open_user(page, real, user.id)
    expect(page.locator("#viewing-bar")).to_contain_text(f"You are viewing {user.name}'s account")
    check(page, "user-while-viewing")
    page.get_by_role("button", name="Stop Viewing").click()
    wait_ready(page)
    expect(page.locator("#viewing-bar")).to_be_hidden()
    page.goto(real.url("/portal/profile"))
    wait_ready(page)
    expect(page.locator("#impersonation-notice")).to_be_hidden()
    expect(page.locator("#profile-email")).to_have_text(ADMIN)
    timeline = page.locator("#audit-list")
    open_user(page, real, user.id)
    expect(timeline).to_contain_text("An admin stopped viewing the account")
    expect(timeline).to_contain_text("Ticket 5120: invoices missing")
    page_watch.assert_clean()


def test_two_factor_reset_names_what_goes_and_removes_it(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("lost-phone")
    real.enable_totp(user, key_name="Desk key")
    until("the two-factor projection", lambda: two_factor_on(real, user.id))
    sign_in(page, real)
    open_user(page, real, user.id)
    expect(page.locator("#user-badges")).to_contain_text("Two-factor On")
    page.get_by_role("button", name="Reset Two-Factor").click()
    dialog = page.get_by_role("dialog", name=f"Reset two-factor for {user.name}?")
    for words in ("authenticator app", "every security key and passkey", "all their recovery codes",
                  "every session of their account ends"):
        expect(dialog).to_contain_text(words)
    check(page, "user-reset-confirm")
    dialog.get_by_role("button", name="Reset Two-Factor").click()
    expect(page.locator("#actions-status")).to_contain_text("factors and recovery codes were removed")
    real.wait_for_mail(user.email, "mfa.reset_by_admin")
    status, mfa = api_as(real, user, "GET", "/api/mfa")
    assert status == 200 and mfa["two_factor_enabled"] is False
    assert mfa["totp"]["enabled"] is False and mfa["security_keys"] == [] and mfa["recovery_codes"] is None
    expect(page.locator("#audit-list")).to_contain_text("Two-factor reset by an admin")
    page_watch.assert_clean()


def test_deactivate_ends_the_session_and_reactivate_restores(page: Page, page_watch: PageWatch, real: Real,
                                                             browser: Browser) -> None:
    user = real.new_user("leaver")
    theirs = browser.new_context(locale="en-GB", timezone_id="UTC")
    try:
        own = theirs.new_page()
        sign_in(own, real, user.email, user.password)
        sign_in(page, real)
        open_user(page, real, user.id)
        page.get_by_role("button", name="Deactivate").click()
        dialog = page.get_by_role("dialog", name=f"Deactivate {user.name}?")
        expect(dialog).to_contain_text("signed out everywhere at once")
        check(page, "user-deactivate-confirm")
        dialog.get_by_role("button", name="Deactivate").click()
        expect(page.locator("#actions-status")).to_contain_text("is deactivated")
        expect(page.locator("#user-badges")).to_contain_text("Deactivated")
        expect(page.get_by_role("button", name="Reactivate")).to_be_focused()
        check(page, "user-deactivated", phone=True)

        own.reload()  # their session ended at once: the profile sends them to sign in
        own.wait_for_url(re.compile(r"/portal/login"))
        assert api_as_refused(real, user.email, user.password)

        page.get_by_role("button", name="Reactivate").click()
        expect(page.locator("#actions-status")).to_contain_text("is active again")
        sign_in(own, real, user.email, user.password)  # the same password as before
        expect(own.get_by_role("heading", level=1)).to_have_text(user.name)
    finally:
        theirs.close()
    timeline = page.locator("#audit-list")
    expect(timeline).to_contain_text("Reactivated")
    expect(timeline).to_contain_text("Deactivated")
    page_watch.assert_clean()


def api_as_refused(real: Real, email: str, password: str) -> bool:
    """A password sign-in of the account answers 401, as a wrong password does."""
    async def attempt() -> int:
        client = Portal(real.base_url)
        try:
            status, _ = await client.post("/api/auth/login", {"email": email, "password": password})
            return status
        finally:
            await client.close()

    return real.api.run(attempt) == 401


def test_audit_timeline_is_paged_and_filtered(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("audited")
    for _ in range(3):
        api_as(real, user, "GET", "/api/profile")  # each call signs in once: three sign-ins

    async def many(conn: Any) -> None:
        await conn.execute("INSERT INTO profile.audit_log (user_id, type, detail) "
                           "SELECT $1, 'profile_updated', 'entry ' || g FROM generate_series(1, 25) g",
                           uuid.UUID(user.id))

    real.db(many)
    sign_in(page, real)
    open_user(page, real, user.id)
    total = len(admin_api(real, "GET", f"/api/admin/users/{user.id}/audit")[1])
    assert total > 20, total  # 25 notes, 3 sign-ins and their sign-outs, the invitation and its acceptance
    items = page.locator("#audit-list > li")
    expect(items).to_have_count(20)
    expect(items.first).to_contain_text("Profile updated")  # newest first: the notes came last
    expect(items.first).to_contain_text("entry 25")
    more = page.get_by_role("button", name="Show More")
    for shown in range(40, total + 20, 20):
        more.click()
        expect(items).to_have_count(min(shown, total))
    expect(more).to_be_hidden()
    page.get_by_label("Show").select_option(label="Signed in")
    expect(items).to_have_count(3)
    for entry in items.all():
        expect(entry).to_contain_text("Signed in")
    check(page, "user-audit-filtered", phone=True)
    page_watch.assert_clean()


def test_client_page_shows_its_single_sign_on_settings(page: Page, page_watch: PageWatch, real: Real) -> None:
    client = real.client_named(f"Federated {uuid.uuid4().hex[:8]}")
    sign_in(page, real)
    open_client(page, real, client["id"])
    section = page.locator("#sso-section")
    expect(section).to_be_visible()
    expect(section).to_contain_text("Not set up")
    page_watch.allow(r"status of 422")
    section.get_by_label("Issuer").fill("http://127.0.0.1:9/nothing-here")
    section.get_by_role("button", name="Test Sign-In").click()
    expect(section.locator("#sso-issuer-error")).to_contain_text("Discovery")
    check(page, "client-sso", phone=True)
    page_watch.assert_clean()


def test_a_client_user_gets_the_403_page(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("curious")
    sign_in(page, real, user.email, user.password)
    page_watch.allow(r"status of 403")
    for path in ("/portal/admin/", "/portal/admin/client?id=x", f"/portal/admin/user?id={user.id}"):
        response = page.goto(real.url(path))
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("You don't have access to this page")
    check(page, "refused-client-user")
    status, _ = api_as(real, user, "GET", "/api/admin/clients?limit=5")
    assert status == 403
    page_watch.assert_clean()


def test_every_console_page_has_the_shared_top_bar_and_signs_out(page: Page, page_watch: PageWatch,
                                                                real: Real) -> None:
    """The console's top bar and banners come from one place (partials/page-head.js, admin/console.js):
    brand, skip link, favicon and navigation on each of its pages, and Sign out ends the session."""
    client = real.client_named("Top Bar Co")
    user = real.new_user("topbar", client_id=client["id"])
    sign_in(page, real)
    pages = {"/portal/admin/": True, f"/portal/admin/client?id={client['id']}": False,
             f"/portal/admin/user?id={user.id}": False}
    for path, current in pages.items():
        open_console(page, real, path)
        brand = page.get_by_role("link", name="Client Portal MSP Admin")
        expect(brand).to_have_attribute("href", "/portal/admin/")
        expect(page.locator("a.skip-link")).to_have_attribute("href", "#main")
        assert page.locator('link[rel="icon"]').get_attribute("href").endswith("/img/favicon.svg")
        nav = page.get_by_role("navigation", name="Portal")
        expect(nav.get_by_role("link", name="Profile")).to_have_attribute("href", "/portal/profile")
        clients = nav.get_by_role("link", name="Clients")
        if current:
            expect(clients).to_have_attribute("aria-current", "page")
        else:
            expect(clients).not_to_have_attribute("aria-current", "page")
        expect(page.locator("#two-factor-banner")).to_be_visible()  # the demo admin has no two-factor
        expect(page.locator("#viewing-bar")).to_be_hidden()
        expect(page.locator("#page-error")).to_be_hidden()
    page_watch.allow(r"status of 401")  # the login page's own session check, and the probe below
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/portal/login"))
    assert page.evaluate("async () => (await fetch('/api/auth/session')).status") == 401
    page_watch.assert_clean()
