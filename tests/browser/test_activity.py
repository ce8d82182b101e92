"""The Security tab's Recent activity (issue #19) in Chromium against the real stack: entries appear after
their actions, newest first, in plain words with the browser and IP; "Show more" pages through the rest
without repeating an entry; an unknown type gets a generic label without breaking the list; an empty
list says so; the "This wasn't me?" hint leads to the password and sessions."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import pyotp
import pytest
from playwright.sync_api import Page, expect
from portal_shared.events import ALL_EVENTS
from profile_service.activity import NOT_ACTIVITY

from tests.browser.helpers import PageWatch, assert_fits_phone, submit_email_then_password, wait_ready
from tests.browser.real_stack import ADMIN, Real, User, check
from tests.support.portal_client import Portal
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow

PAGE = 20  # entries the page asks for at a time (ui/assets/js/profile/activity.js)


def activity_count(real: Real, user: User, type_: str | None = None) -> int:
    async def count(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval(
            "SELECT count(*) FROM profile.activity WHERE user_id = $1 AND ($2::text IS NULL OR type = $2)",
            uuid.UUID(user.id), type_))

    return real.db(count)


def wait_for_activity(real: Real, user: User, type_: str, timeout: float = 20) -> None:
    """The positive signal that an event reached the account's activity (its consumer wrote the row)."""
    deadline = time.monotonic() + timeout
    while activity_count(real, user, type_) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {type_} activity for {user.email} within {timeout}s")
        time.sleep(0.1)


def open_security(page: Page, real: Real, user: User) -> None:
    submit_email_then_password(page, real.base_url, user.email, user.password)
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)
    page.get_by_role("tab", name="Security").click()
    expect(page.locator("#activity-section")).to_be_visible()


def rows(page: Page) -> Any:
    return page.locator("#activity-list > li")


def test_labels_in_plain_words_and_never_a_broken_list(page: Page, page_watch: PageWatch, real: Real) -> None:
    """Every entry type of the contract has its words; odd and unknown entries get the generic label."""
    page.goto(real.url("/portal/login"))
    wait_ready(page)
    entries = [
        {"type": "sign_in", "detail": {"method": "password"}},
        {"type": "sign_in", "detail": {"method": "passkey"}},
        {"type": "sign_in", "detail": {"method": "sso"}},
        {"type": "sign_in", "detail": {}},
        {"type": "sign_in", "detail": {"method": "password", "second_factor": "totp", "new_device": True}},
        {"type": "sign_in", "detail": {"method": "sso", "second_factor": "recovery_code"}},
        {"type": "sign_in_failed", "detail": {"count": 3}},
        {"type": "sign_in_failed", "detail": {}},
        {"type": "profile.password_changed", "detail": {"method": "change"}},
        {"type": "profile.password_changed", "detail": {"method": "reset"}},
        {"type": "mfa.security_key_added", "detail": {"name": "YubiKey 5"}},
        {"type": "mfa.two_factor_enabled", "detail": {"method": "totp"}},
        {"type": "profile.impersonation_started", "detail": {"admin_name": "Alice Admin", "reason": "Ticket 4711"}},
        {"type": "profile.new_device_sign_in", "detail": {}},
        {"type": "profile.email_changed", "detail": {"old_email": "a@x.example", "new_email": "b@x.example"}},
        {"type": "profile.sso_linked", "detail": {"issuer": "https://login.example"}},
        {"type": "profile.change_undone", "detail": {"undone_type": "mfa.security_key_added"}},
        {"type": "something.new_next_year", "detail": {"x": 1}},
        {"type": "sign_in_failed", "detail": "not an object"},
        {"type": "profile.impersonation_started", "detail": None},
        None,
    ]
    described = page.evaluate(
        """async (entries) => {
            const css = document.querySelector('link[rel="stylesheet"]').getAttribute('href');
            const labels = await import(css.replace(/\\/css\\/portal\\.css$/, '/js/profile/activity-labels.js'));
            return entries.map((e) => labels.describeActivity(e));
        }""", entries)
    assert [(d["title"], d["detail"]) for d in described] == [
        ("Signed in with your password", ""),
        ("Signed in with a passkey", ""),
        ("Signed in with single sign-on", ""),
        ("Signed in", ""),
        ("Signed in with your password and an authenticator app", "From a browser new to your account"),
        ("Signed in with single sign-on and a recovery code", ""),
        ("3 failed sign-in attempts", ""),
        ("Failed sign-in attempt", ""),
        ("Password changed", ""),
        ("Password reset with an emailed link", ""),
        ("Security key added", "“YubiKey 5”"),
        ("Two-factor authentication turned on", "With an authenticator app"),
        ("An MSP admin viewed your account", "Alice Admin · Reason: Ticket 4711"),
        ("Sign-in from a new device", ""),
        ("Sign-in email address changed", "From a@x.example to b@x.example"),
        ("Single sign-on linked to your account", "https://login.example"),
        ("A change was undone (“This wasn't me”)", "Undone: Security key added"),
        ("Other account activity", ""),
        ("Failed sign-in attempt", ""),
        ("An MSP admin viewed your account", ""),
        ("Other account activity", ""),
    ]

    # Every event the server may put in the feed has words of its own (a new event needs them too).
    feed_types = sorted(cls.type for cls in ALL_EVENTS if cls.type not in NOT_ACTIVITY)
    titles = page.evaluate(
        """async (types) => {
            const css = document.querySelector('link[rel="stylesheet"]').getAttribute('href');
            const labels = await import(css.replace(/\\/css\\/portal\\.css$/, '/js/profile/activity-labels.js'));
            return types.map((type) => labels.describeActivity({type, detail: {}}).title);
        }""", feed_types)
    assert "Other account activity" not in titles, dict(zip(feed_types, titles, strict=True))
    page_watch.assert_clean()


def test_recent_activity_after_real_actions(page: Page, page_watch: PageWatch, real: Real) -> None:
    user = real.new_user("activity")

    async def wrong_passwords() -> None:
        stranger = Portal(real.base_url)
        try:
            for _ in range(3):
                status, _body = await stranger.post("/api/auth/login", {"email": user.email, "password": "wrong one!"})
                assert status == 401
        finally:
            await stranger.close()

    real.api.run(wrong_passwords)

    async def view(admin: Portal) -> None:
        status, body = await admin.post(f"/api/admin/users/{user.id}/impersonate", {"reason": "Ticket 4711: phone"})
        assert status == 200, body
        assert (await admin.post("/api/admin/impersonation/stop"))[0] == 200

    real.call(ADMIN, DEMO_PASSWORD, view)
    wait_for_activity(real, user, "profile.impersonation_started")

    open_security(page, real, user)
    listed = rows(page)
    expect(listed.first).to_contain_text("Signed in with your password")  # newest first: this sign-in
    expect(listed.first).to_contain_text("Chrome on Linux")
    expect(listed.first).to_contain_text("IP 127.0.0.1")
    expect(listed.first.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    viewed = listed.filter(has_text="An MSP admin viewed your account")
    expect(viewed).to_have_count(1)
    expect(viewed).to_contain_text("Reason: Ticket 4711: phone")
    expect(listed.filter(has_text=re.compile(r"failed sign-in attempt", re.I)).first).to_be_visible()
    expect(page.locator("#activity-empty")).to_be_hidden()
    expect(page.get_by_role("button", name="Show more")).to_be_hidden()
    check(page, "security-activity")
    assert_fits_phone(page)

    # Change the password on the page: its entry comes on top once the event has been recorded.
    page.get_by_role("button", name="change your password").click()
    form = page.locator("#password-form")
    expect(form.get_by_label("Current Password")).to_be_focused()
    new_password = "the list shows this change 5"  # not the user's name (the server refuses that)
    form.get_by_label("Current Password").fill(user.password)
    form.get_by_label("New Password", exact=True).fill(new_password)
    form.get_by_label("Confirm New Password").fill(new_password)
    form.get_by_role("button", name="Change Password").click()
    expect(page.locator("#password-changed")).to_be_visible()
    wait_for_activity(real, user, "profile.password_changed")
    page.reload()
    wait_ready(page)
    page.get_by_role("tab", name="Security").click()
    expect(rows(page).first).to_contain_text("Password changed")

    # A type the page does not know yet: a generic label, and the rest of the list still there.
    async def future_type(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO profile.activity (user_id, type, detail) VALUES ($1, $2, $3)",
                           uuid.UUID(user.id), "profile.something_from_the_future", '{"odd": [1, 2]}')

    real.db(future_type)
    page.reload()
    wait_ready(page)
    page.get_by_role("tab", name="Security").click()
    expect(rows(page).first).to_contain_text("Other account activity")
    expect(rows(page).filter(has_text="Password changed")).to_have_count(1)

    page.get_by_role("button", name="end your other sessions").click()
    expect(page.locator("#sessions-title")).to_be_focused()  # no other session: the section itself
    page_watch.assert_clean()


def test_show_more_pages_through_without_repeats_and_an_empty_list(page: Page, page_watch: PageWatch,
                                                                   real: Real) -> None:
    user = real.new_user("paging")

    async def sign_ins() -> None:
        for _ in range(PAGE + 3):
            client = Portal(real.base_url)
            try:
                await client.login(user.email, user.password)
            finally:
                await client.close()

    real.api.run(sign_ins)
    open_security(page, real, user)
    total = activity_count(real, user)
    assert total > PAGE
    expect(rows(page)).to_have_count(PAGE)
    more = page.get_by_role("button", name="Show more")
    while more.is_visible():
        shown = rows(page).count()
        more.click()
        expect(rows(page)).not_to_have_count(shown)
        expect(rows(page).nth(shown)).to_be_focused()  # the first new entry
    expect(rows(page)).to_have_count(total)
    stamps = rows(page).locator("time").evaluate_all("els => els.map((e) => e.getAttribute('datetime'))")
    times = [datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in stamps]
    assert times == sorted(times, reverse=True), "newest first, across pages"

    async def forget(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM profile.activity WHERE user_id = $1", uuid.UUID(user.id))

    real.db(forget)
    page.reload()
    wait_ready(page)
    page.get_by_role("tab", name="Security").click()
    expect(page.locator("#activity-empty")).to_have_text("No activity yet.")
    expect(rows(page)).to_have_count(0)
    expect(more).to_be_hidden()
    check(page, "security-activity-empty")
    page_watch.assert_clean()


def test_a_change_is_undone_from_its_row_after_reauthentication(page: Page, page_watch: PageWatch,
                                                                  real: Real) -> None:
    user = real.new_user("activity-undo")
    secret, _codes = real.enable_totp(user, key_name="Unknown key")
    wait_for_activity(real, user, "mfa.security_key_added")
    submit_email_then_password(page, real.base_url, user.email, user.password)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    authenticator = page.get_by_role("button", name="Authenticator App", exact=True)
    if authenticator.is_visible():
        authenticator.click()
    # The next step's code: the one of this step was spent turning the app on.
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/portal/profile"))
    wait_ready(page)
    page.get_by_role("tab", name="Security").click()
    added = rows(page).filter(has_text="Security key added")
    expect(rows(page).filter(has_text="Signed in").first.get_by_role("button", name=re.compile("^Undo"))) \
        .to_have_count(0)
    real.age_browser_session(page)  # signed in 11 minutes ago: the undo asks to confirm it's you first
    page_watch.allow(r"status of 403")  # the server's reauth-required answer, which opens the dialog
    added.get_by_role("button", name="Undo: Security key added").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("every other session of your account will be signed out")
    dialog.get_by_role("button", name="Undo").click()
    reauth = page.get_by_role("dialog")
    expect(reauth).to_contain_text("Confirm it's you")
    reauth.get_by_label("Password").fill(user.password)
    reauth.get_by_role("button", name="Confirm").click()
    expect(page.locator("#activity-status")).to_contain_text("Undone: Security key added")
    page.reload()
    wait_ready(page)
    page.get_by_role("tab", name="Security").click()
    expect(page.get_by_role("button", name="Remove Unknown key")).to_have_count(0)  # the key is gone
    added = rows(page).filter(has_text="Security key added")
    expect(added.get_by_role("button", name=re.compile("^Undo"))).to_have_count(0)  # once only
    check(page, "security-activity-undone")
    page_watch.assert_clean()
