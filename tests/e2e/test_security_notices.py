"""The new-device notice and the security activity through nginx, on the whole stack: the sign-in after an
invitation is quiet, a later one from another browser emails the owner, its "This wasn't me" link ends
every session and mails a reset link, and the Security tab's feed shows all of it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.test_flows import NEW_PASSWORD, invited_user
from tests.support.portal_client import Mailbox, Portal, body_text

pytestmark = pytest.mark.slow
OTHER_BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15 E2E"


@pytest.fixture
def mailbox(portal_stack: Any) -> Mailbox:
    return Mailbox(portal_stack.mail_dir)


@pytest.fixture
async def browsers(portal_stack: Any) -> AsyncIterator[list[Portal]]:
    opened: list[Portal] = []
    yield opened
    for browser in opened:
        await browser.close()


async def _sign_in(portal_stack: Any, browsers: list[Portal], address: str, user_agent: str) -> Portal:
    browser = Portal(portal_stack.base_url)
    browsers.append(browser)
    status, body, _ = await browser.request("POST", "/api/auth/login", {"email": address, "password": NEW_PASSWORD},
                                            headers={"User-Agent": user_agent})
    assert status == 200, body
    return browser


async def test_a_new_browser_is_reported_and_its_link_locks_everyone_out(portal_stack: Any, mailbox: Mailbox,
                                                                         browsers: list[Portal]) -> None:
    address = await invited_user(portal_stack, mailbox)
    first = await _sign_in(portal_stack, browsers, address, "Firefox/133 E2E")
    await _sign_in(portal_stack, browsers, address, OTHER_BROWSER)
    [notice] = await mailbox.wait_for(address, "profile.new_device_sign_in")
    assert notice["Subject"] == "New sign-in to your Client Portal account"
    text = body_text(notice)
    assert "Safari/605.1.15 E2E" in text and "Firefox" not in text, "only the second, unexpected sign-in"

    status, feed = await first.get("/api/auth/activity")
    assert status == 200
    sign_ins = [i for i in feed["items"] if i["type"] == "sign_in"]
    assert [i["detail"]["new_device"] for i in sign_ins] == [True, False]
    assert sign_ins[0]["user_agent"] == OTHER_BROWSER

    token = re.search(r"/portal/not-me\?token=([A-Za-z0-9_\-.%]+)", text)
    assert token
    stranger = Portal(portal_stack.base_url)
    browsers.append(stranger)
    assert (await stranger.post("/api/auth/not-me", {"token": token.group(1)}, csrf=False))[0] == 204
    await mailbox.wait_for(address, "profile.password_reset_requested")
    for browser in browsers[:-1]:
        assert (await browser.get("/api/profile"))[0] == 401, "every session ended"


async def test_a_password_change_shows_in_the_feed_with_its_browser(portal_stack: Any, mailbox: Mailbox,
                                                                    browsers: list[Portal]) -> None:
    address = await invited_user(portal_stack, mailbox)
    browser = await _sign_in(portal_stack, browsers, address, OTHER_BROWSER)
    status, body, _ = await browser.request("POST", "/api/profile/password", {
        "current_password": NEW_PASSWORD, "new_password": NEW_PASSWORD + "!", "confirm_password": NEW_PASSWORD + "!"},
        headers={"User-Agent": OTHER_BROWSER})
    assert status == 204, body
    browser = Portal(portal_stack.base_url)
    browsers.append(browser)
    await browser.login(address, NEW_PASSWORD + "!")
    for _ in range(200):  # the feed item comes from the event, through RabbitMQ: wait for it
        items = (await browser.get("/api/auth/activity"))[1]["items"]
        changed = [i for i in items if i["type"] == "profile.password_changed"]
        if changed:
            break
        await asyncio.sleep(0.05)
    assert changed and changed[0]["user_agent"] == OTHER_BROWSER and changed[0]["detail"] == {"method": "change"}
