"""The account's security activity (GET /api/auth/activity) and the new-device notice, on the real profile
service, Postgres and RabbitMQ (profile consumes its own and mfa's events into the feed)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from portal_shared.actor import Actor
from portal_shared.events import Envelope, SecurityKeyAdded
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, TOTP_CODE, Browser, ProfileHarness

UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 ActivityTest"
NEW_PASSWORD = "Another-Sturdy-Lantern-77"


async def _feed(browser: Browser, query: str = "") -> dict[str, Any]:
    status, body = await browser.get(f"/api/auth/activity{query}")
    assert status == 200, body
    return body


async def _eventually(browser: Browser, type_: str) -> dict[str, Any]:
    """The newest item of `type_`, once the consumer has written it (a positive signal, bounded)."""
    for _ in range(200):
        items = [i for i in (await _feed(browser, "?limit=100"))["items"] if i["type"] == type_]
        if items:
            return items[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {type_} item appeared")


async def _new_device_events(portal: ProfileHarness) -> list[dict[str, Any]]:
    return [e["data"] for e in await portal.events("profile.new_device_sign_in")]


async def test_sign_ins_and_failures_show_with_browser_and_address(portal: ProfileHarness) -> None:
    attacker = portal.browser()
    for _ in range(3):
        status, _ = await attacker.post("/api/auth/login", {"email": DEMO_EMAIL, "password": "wrong-guess"},
                                        headers={"User-Agent": "curl/8.0"})
        assert status == 401
    for _ in range(2):  # an unknown address leaves nothing anywhere
        await attacker.post("/api/auth/login", {"email": "nobody@client.example", "password": "x"})
    browser = portal.browser()
    await browser.call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD},
                       headers={"User-Agent": UA})
    items = (await _feed(browser))["items"]
    assert [i["type"] for i in items] == ["sign_in", "sign_in_failed"], "the burst reads as one item"
    signed_in, failed = items
    assert signed_in["detail"] == {"method": "password", "second_factor": None, "new_device": True}
    assert signed_in["user_agent"] == UA and signed_in["ip"] == "127.0.0.1" and signed_in["at"].endswith("Z")
    assert failed["detail"]["factor"] == "password" and failed["detail"]["count"] == 3
    assert failed["detail"]["first_at"] < failed["detail"]["last_at"] == failed["at"]
    assert failed["user_agent"] == "curl/8.0"
    assert await portal.db.fetchval("SELECT count(*) FROM profile.activity WHERE user_id <> $1",
                                    uuid.UUID(portal.demo_id)) == 0


async def test_a_second_factor_sign_in_says_both_steps(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    browser = portal.browser()
    await browser.login(DEMO_EMAIL)
    assert (await browser.post("/api/auth/login/totp", {"code": "000000"}))[0] == 401
    assert (await browser.post("/api/auth/login/totp", {"code": TOTP_CODE}))[0] == 200
    signed_in, failed = (await _feed(browser))["items"][:2]
    assert signed_in["detail"]["method"] == "password" and signed_in["detail"]["second_factor"] == "totp"
    assert failed["type"] == "sign_in_failed" and failed["detail"] == {"factor": "totp"}


async def test_changes_appear_from_their_events_with_the_actor(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    status, _, _ = await browser.call("POST", "/api/profile/password", {
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        headers={"User-Agent": UA})
    assert status == 204
    browser = await portal.signed_in(password=NEW_PASSWORD)
    changed = await _eventually(browser, "profile.password_changed")
    assert changed["detail"] == {"method": "change"} and changed["user_agent"] == UA and changed["ip"] == "127.0.0.1"

    # mfa's events carry their actor in the envelope; a redelivery writes nothing more.
    event = Envelope.wrap(SecurityKeyAdded(user_id=portal.demo_id, key_id="k1", name="YubiKey <b>5</b>"),
                          source="mfa", actor=Actor("203.0.113.9", "Firefox/133"))
    await portal.publish(event)
    added = await _eventually(browser, "mfa.security_key_added")
    assert added == {"at": added["at"], "type": "mfa.security_key_added", "ip": "203.0.113.9",
                     "user_agent": "Firefox/133", "detail": {"key_id": "k1", "name": "YubiKey <b>5</b>"},
                     "id": event.id, "undoable": True}
    await portal.publish(event, wait=False)  # a redelivery ...
    # ... and after it an event about an account that does not exist: handled (not dead-lettered), writing
    # nothing. Once it is handled, so is the redelivery before it.
    stranger = str(uuid.uuid4())
    await portal.publish(Envelope.wrap(SecurityKeyAdded(user_id=stranger, key_id="k", name="n"), source="mfa"))
    assert await portal.db.fetchval("SELECT count(*) FROM profile.activity WHERE event_id = $1",
                                    uuid.UUID(event.id)) == 1
    assert await portal.db.fetchval("SELECT count(*) FROM profile.activity WHERE user_id = $1",
                                    uuid.UUID(stranger)) == 0


async def test_an_admin_viewing_the_account_shows_who_and_why(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    status, _ = await admin.post(f"/api/admin/users/{portal.demo_id}/impersonate", {"reason": "Ticket 9: invoices"})
    assert status == 200
    browser = await portal.signed_in()
    viewed = await _eventually(browser, "profile.impersonation_started")
    assert viewed["detail"]["admin_name"] == "MSP Admin" and viewed["detail"]["reason"] == "Ticket 9: invoices"
    assert (await admin.post("/api/admin/impersonation/stop"))[0] == 200
    ended = await _eventually(browser, "impersonation_stopped")
    assert ended["detail"] == {"admin_id": portal.admin_id, "admin_name": "MSP Admin", "reason": "Ticket 9: invoices"}
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/impersonate", {"reason": "Ticket 9: again"}))[0] \
        == 200
    # While viewing, the admin sees the account's Security tab as its owner does; afterwards their own again.
    assert any(i["type"] == "profile.impersonation_started" for i in (await _feed(admin, "?limit=100"))["items"])
    assert (await admin.post("/api/admin/impersonation/stop"))[0] == 200
    assert all(i["type"] != "profile.impersonation_started" for i in (await _feed(admin, "?limit=100"))["items"])


async def test_paging_is_stable_and_bad_queries_are_field_errors(portal: ProfileHarness) -> None:
    browser = portal.browser()
    for _ in range(5):
        await browser.login(DEMO_EMAIL)
    seen: list[str] = []
    page = await _feed(browser, "?limit=2")
    while True:
        assert len(page["items"]) <= 2
        seen += [i["at"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        page = await _feed(browser, f"?limit=2&cursor={page['next_cursor']}")
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    for query, field in (("?limit=0", "limit"), ("?limit=101", "limit"), ("?limit=abc", "limit"),
                         ("?cursor=%%%", "cursor"), ("?cursor=bm90LWEtY3Vyc29y", "cursor")):
        status, body = await browser.get(f"/api/auth/activity{query}")
        assert status == 422 and field in body["errors"], (query, body)
    assert (await portal.browser().get("/api/auth/activity"))[0] == 401


async def test_new_device_notice_once_and_not_after_a_reset(portal: ProfileHarness) -> None:
    first = portal.browser()
    await first.login(DEMO_EMAIL)
    assert len(await _new_device_events(portal)) == 1
    notice = (await _new_device_events(portal))[0]
    assert notice["user_id"] == portal.demo_id and notice["ip"] == "127.0.0.1"
    await first.login(DEMO_EMAIL)  # a known device: nothing
    assert len(await _new_device_events(portal)) == 1
    # A browser without cookies is new each time, but the same address and browser is mailed once a day.
    for _ in range(2):
        await portal.browser().call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD},
                                    headers={"User-Agent": UA})
    assert len(await _new_device_events(portal)) == 2

    # The sign-in that follows a reset is expected: no notice, whatever the browser.
    await portal.browser().post("/api/auth/password-reset", {"email": DEMO_EMAIL})
    for _ in range(200):
        if await portal.events("profile.password_reset_requested"):
            break
        await asyncio.sleep(0.05)
    url = (await portal.events("profile.password_reset_requested"))[-1]["data"]["reset_url"]
    token = url.split("token=")[1]
    assert (await portal.browser().post("/api/auth/password-reset/confirm", {
        "token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}))[0] == 204
    after_reset = portal.browser()
    await after_reset.call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": NEW_PASSWORD},
                           headers={"User-Agent": "Safari/18"})
    assert len(await _new_device_events(portal)) == 2
    assert (await _feed(after_reset))["items"][0]["detail"]["new_device"] is False
    await portal.browser().call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": NEW_PASSWORD},
                                headers={"User-Agent": "Edge/131"})
    assert len(await _new_device_events(portal)) == 3, "only the one sign-in after the reset is quiet"


async def test_session_sign_outs_show_and_no_one_sees_another_accounts_feed(portal: ProfileHarness) -> None:
    first = await portal.signed_in()
    second = await portal.signed_in()
    second_id = next(s["id"] for s in (await second.get("/api/auth/sessions"))[1] if s["current"])
    assert (await first.delete(f"/api/auth/sessions/{second_id}"))[0] == 204
    assert (await first.delete("/api/auth/sessions"))[0] == 204
    types = [i["type"] for i in (await _feed(first))["items"]]
    assert types[:2] == ["sessions_revoked", "session_revoked"]
    revoked = next(i for i in (await _feed(first))["items"] if i["type"] == "session_revoked")
    assert revoked["detail"] == {"session_id": second_id}
    # The admin's own feed holds none of the demo user's items, and the demo user's none of the admin's.
    admin = await portal.signed_in(ADMIN_EMAIL)
    admin_items = (await _feed(admin, "?limit=100"))["items"]
    assert admin_items and all(i["type"] == "sign_in" for i in admin_items)
    assert await portal.db.fetchval("SELECT count(*) FROM profile.activity WHERE user_id = $1",
                                    uuid.UUID(portal.admin_id)) == len(admin_items)


async def test_a_change_is_undone_in_place_once_after_reauthentication(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/impersonate", {"reason": "Ticket 12"}))[0] == 200
    other = await portal.signed_in()
    browser = await portal.signed_in()
    viewed = await _eventually(browser, "profile.impersonation_started")
    assert viewed["undoable"] is True and viewed["id"]
    assert all(i["undoable"] is False for i in (await _feed(browser))["items"] if i["type"] == "sign_in")

    # A session that signed in long ago must re-authenticate first (a stolen session alone cannot undo).
    await portal.db.execute("UPDATE profile.sessions SET auth_at = now() - interval '1 hour' WHERE user_id = $1",
                            uuid.UUID(portal.demo_id))
    status, body = await browser.post(f"/api/auth/activity/{viewed['id']}/undo")
    assert status == 403 and body["type"].endswith("reauth-required")
    assert (await browser.post("/api/auth/reauth", {"password": PASSWORD}))[0] == 204

    status, body = await browser.post(f"/api/auth/activity/{viewed['id']}/undo")
    assert status == 200 and body == {"undone": True, "two_factor_disabled": False}
    status, admin_session = await admin.get("/api/auth/session")
    assert status == 401 or admin_session["impersonator"] is None, "the admin's viewing session ended"
    assert (await other.get("/api/profile"))[0] == 401, "every other session of the account ended"
    assert (await browser.get("/api/profile"))[0] == 200, "the one that undid it stays signed in"
    assert (await browser.post(f"/api/auth/activity/{viewed['id']}/undo"))[0] == 409, "once only"
    again = await _eventually(browser, "profile.change_undone")
    assert again["detail"]["undone_type"] == "profile.impersonation_started"
    items = (await _feed(browser, "?limit=100"))["items"]
    assert next(i for i in items if i["id"] == viewed["id"])["undoable"] is False

    # Not a change of this account, not an event, not an id: nothing to undo.
    admin = await portal.signed_in(ADMIN_EMAIL)  # (its viewing session ended with the undo)
    admin_item = next(i for i in (await _feed(admin, "?limit=100"))["items"])
    for target in (str(uuid.uuid4()), "not-an-id", admin_item["id"] or str(uuid.uuid4())):
        assert (await browser.post(f"/api/auth/activity/{target}/undo"))[0] == 404
