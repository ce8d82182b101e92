"""The Profile tab, changing the password, password reset and "This wasn't me" links."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from portal_shared import tokens
from profile_support import DEMO_EMAIL, PASSWORD, TOTP_CODE, ProfileHarness

NEW_PASSWORD = "Brand-New-Kettle-77"


async def _wait_events(portal: ProfileHarness, type_: str, count: int, wait: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait
    while True:
        events = await portal.events(type_)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


async def _requests_handled(portal: ProfileHarness, count: int) -> None:
    """Wait until `count` reset requests of the demo account were handled (they run after the 202)."""
    handled = {"password_reset_requested", "password_reset_throttled"}
    for _ in range(200):
        if sum(t in handled for t in await portal.audit_types(portal.demo_id)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} reset requests were handled")


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def test_profile_read_and_edit(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    status, profile = await browser.get("/api/profile")
    assert status == 200
    assert profile == {"id": portal.demo_id, "email": DEMO_EMAIL, "name": "Demo User", "initial": "D", "phone": None,
                       "company": {"id": profile["company"]["id"], "name": "Demo Client Co"},
                       "title": "Office Manager", "mobile": "+44 20 7946 0018", "impersonator": None}
    status, updated = await browser.patch("/api/profile", {"name": "  Dana   User ", "phone": "+442079460019"})
    assert status == 200 and updated["name"] == "Dana User" and updated["phone"] == "+44 20 7946 0019"
    assert updated["initial"] == "D"
    events = await portal.events("profile.user_updated")
    assert [e["data"] for e in events] == [{"user_id": portal.demo_id, "email": DEMO_EMAIL, "name": "Dana User"}]
    status, body = await browser.patch("/api/profile", {"name": "   "})
    assert status == 422 and list(body["errors"]) == ["name"]
    status, body = await browser.patch("/api/profile", {"phone": "12345"})
    assert status == 422 and list(body["errors"]) == ["phone"]
    status, body = await browser.patch("/api/profile", {"email": "new@client.example"})
    assert status == 422 and body["errors"] == {"email": ["Contact support to change your email address"]}
    status, body = await browser.patch("/api/profile", {"title": "CEO", "mobile": "+44 20 7946 0000"})
    assert status == 422 and set(body["errors"]) == {"title", "mobile"}
    status, cleared = await browser.patch("/api/profile", {"phone": None})
    assert status == 200 and cleared["phone"] is None
    assert len(await portal.events("profile.user_updated")) == 2
    assert (await portal.browser().get("/api/profile"))[0] == 401


async def test_change_password(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    other = await portal.signed_in()
    path = "/api/profile/password"
    status, body = await browser.post(path, {"current_password": "wrong", "new_password": NEW_PASSWORD,
                                             "confirm_password": NEW_PASSWORD})
    assert status == 422 and list(body["errors"]) == ["current_password"]
    status, body = await browser.post(path, {"current_password": PASSWORD, "new_password": "short",
                                             "confirm_password": "short"})
    assert status == 422 and list(body["errors"]) == ["new_password"]
    status, body = await browser.post(path, {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                             "confirm_password": NEW_PASSWORD + "x"})
    assert status == 422 and list(body["errors"]) == ["confirm_password"]
    status, body = await browser.post(path, {"current_password": PASSWORD, "new_password": "demo-user-2024!",
                                             "confirm_password": "demo-user-2024!"})
    assert status == 422 and "name or email" in body["errors"]["new_password"][0]
    status, body = await browser.post(path, {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                             "confirm_password": NEW_PASSWORD})
    assert status == 204, body
    assert (await other.get("/api/profile"))[0] == 401, "every other session ends"
    assert (await browser.get("/api/profile"))[0] == 200, "the current one stays"
    events = await portal.events("profile.password_changed")
    assert [e["data"] for e in events] == [{"user_id": portal.demo_id, "method": "change"}]
    await portal.browser().login(DEMO_EMAIL, NEW_PASSWORD)
    assert (await portal.browser().post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD}))[0] == 401


async def test_password_reset_flow(portal: ProfileHarness) -> None:
    anyone = portal.browser()
    assert (await anyone.post("/api/auth/password-reset", {"email": "nobody@client.example"}))[0] == 202
    assert (await anyone.post("/api/auth/password-reset", {"email": "not an email"}))[0] == 422
    signed_in = await portal.signed_in()
    assert (await anyone.post("/api/auth/password-reset", {"email": DEMO_EMAIL}))[0] == 202
    await _wait_events(portal, "profile.password_reset_requested", 1)
    assert (await anyone.post("/api/auth/password-reset", {"email": DEMO_EMAIL.upper()}))[0] == 202
    events = await _wait_events(portal, "profile.password_reset_requested", 2)
    assert len(events) == 2
    data = events[-1]["data"]
    assert data["user_id"] == portal.demo_id and data["email"] == DEMO_EMAIL
    assert data["reset_url"].startswith("http://localhost:8080/portal/reset-password?token=")
    older, newer = _token(events[0]["data"]["reset_url"]), _token(data["reset_url"])
    assert len(newer) >= 22  # >= 128 bits
    assert await portal.db.fetchval("SELECT count(*) FROM profile.password_tokens WHERE token_hash = $1::text::bytea",
                                    newer) == 0, "stored hashed only"

    confirm = "/api/auth/password-reset/confirm"
    status, body = await anyone.post(confirm, {"token": older, "new_password": NEW_PASSWORD,
                                               "confirm_password": NEW_PASSWORD})
    assert status == 400 and body["type"].endswith("invalid-reset-token"), "a newer token voids older ones"
    status, body = await anyone.post(confirm, {"token": newer, "new_password": NEW_PASSWORD,
                                               "confirm_password": "different-thing-1"})
    assert status == 422 and list(body["errors"]) == ["confirm_password"]
    status, _, response = await anyone.call("POST", confirm, {"token": newer, "new_password": NEW_PASSWORD,
                                                              "confirm_password": NEW_PASSWORD})
    assert status == 204
    assert "portal_session" not in response.cookies, "a reset never signs anyone in"
    assert (await signed_in.get("/api/profile"))[0] == 401, "the reset ends every session"
    status, body = await anyone.post(confirm, {"token": newer, "new_password": NEW_PASSWORD,
                                               "confirm_password": NEW_PASSWORD})
    assert status == 400 and body["type"].endswith("invalid-reset-token"), "single use"
    assert (await anyone.post(confirm, {"token": "made-up", "new_password": NEW_PASSWORD,
                                        "confirm_password": NEW_PASSWORD}))[0] == 400
    changed = await portal.events("profile.password_changed")
    assert [e["data"]["method"] for e in changed] == ["reset"]
    await portal.browser().login(DEMO_EMAIL, NEW_PASSWORD)


async def test_reset_requests_are_limited_per_account_and_tokens_expire(portal: ProfileHarness) -> None:
    anyone = portal.browser()
    for _ in range(5):
        assert (await anyone.post("/api/auth/password-reset", {"email": DEMO_EMAIL}))[0] == 202
    await _requests_handled(portal, 5)  # each ends in an audit row, sent or throttled: then count the events
    events = await portal.events("profile.password_reset_requested")
    assert len(events) == 3, "3 per 15 minutes per email; beyond that silently no email"
    token = _token(events[-1]["data"]["reset_url"])
    await portal.db.execute("UPDATE profile.password_tokens SET expires_at = now() - interval '1 second'")
    status, body = await anyone.post("/api/auth/password-reset/confirm",
                                     {"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert status == 400 and body["type"].endswith("invalid-reset-token")


async def test_reset_does_not_bypass_two_factor(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    anyone = portal.browser()
    await anyone.post("/api/auth/password-reset", {"email": DEMO_EMAIL})
    token = _token((await _wait_events(portal, "profile.password_reset_requested", 1))[0]["data"]["reset_url"])
    assert (await anyone.post("/api/auth/password-reset/confirm", {
        "token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}))[0] == 204
    browser = portal.browser()
    assert (await browser.login(DEMO_EMAIL, NEW_PASSWORD))["state"] == "second_factor_required"
    assert (await browser.get("/api/profile"))[0] == 401
    assert (await browser.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200


async def test_not_me_link_ends_sessions_and_emails_a_reset_link(portal: ProfileHarness) -> None:
    signed_in = await portal.signed_in()
    jti = str(uuid.uuid4())
    token = tokens.sign(portal.env["SERVICE_AUTH_KEY"], tokens.NOT_ME, {"sub": portal.demo_id, "jti": jti},
                        ttl_seconds=7 * 24 * 3600)
    anyone = portal.browser()
    assert (await anyone.post("/api/auth/not-me", {"token": token}))[0] == 204
    assert (await signed_in.get("/api/profile"))[0] == 401
    events = await portal.events("profile.password_reset_requested")
    assert len(events) == 1 and events[0]["data"]["user_id"] == portal.demo_id
    assert (await anyone.post("/api/auth/not-me", {"token": token}))[0] == 204, "a second use answers alike"
    assert len(await portal.events("profile.password_reset_requested")) == 1, "and does nothing more"
    forged = tokens.sign("another-key", tokens.NOT_ME, {"sub": portal.demo_id, "jti": "x"}, ttl_seconds=60)
    assert (await anyone.post("/api/auth/not-me", {"token": forged}))[0] == 400
    wrong_purpose = tokens.sign(portal.env["SERVICE_AUTH_KEY"], tokens.IDENTITY, {"sub": portal.demo_id, "jti": "y"},
                                ttl_seconds=60)
    assert (await anyone.post("/api/auth/not-me", {"token": wrong_purpose}))[0] == 400
    assert "not_me" in await portal.audit_types(portal.demo_id)
