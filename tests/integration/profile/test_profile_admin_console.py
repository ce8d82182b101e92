"""The admin console's API (issue #15): a client with its counts, a user with their state, resending an
invitation, deactivating and reactivating an account, and keyset paging of the lists; with the hostile
cases (client users, admin on admin, bad ids, limits and cursors: 403/404/422, never a 5xx)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from profile_service.bootstrap import create_admin
from profile_service.repository import tokens as tokens_repo
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, Browser, ProfileHarness

from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider

NEW_PASSWORD = "Granite-Harbour-19"
BAD_LIMITS = ("0", "101", "-1", "abc", "1.5", "", " ", "1e2", "٣")  # the last: an Arabic-Indic digit


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def _cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).rstrip(b"=").decode()


BAD_CURSORS = ("garbage!", "%00", "e30", _cursor("users", "a", "b"), _cursor("clients"), _cursor("clients", 1, 2),
               _cursor("clients", "a", "not-a-uuid"), _cursor("clients", "a\u0000", str(uuid.uuid4())),
               base64.urlsafe_b64encode(b'["clients","\\ud800","' + str(uuid.uuid4()).encode() + b'"]').decode(),
               "A" * 2000)


async def _client(admin: Browser, name: str) -> dict[str, Any]:
    status, client = await admin.post("/api/admin/clients", {"name": name})
    assert status == 201, client
    return client


async def _invite(portal: ProfileHarness, admin: Browser, client_id: str, email: str,
                  name: str = "Pat Jones") -> tuple[dict[str, Any], str]:
    """A new user of the client, and the link token of their invitation email."""
    status, user = await admin.post("/api/admin/users", {"email": email, "name": name, "client_id": client_id})
    assert status == 201, user
    return user, await _invite_token(portal, user["id"])


async def _invite_token(portal: ProfileHarness, user_id: str, nth: int = -1) -> str:
    invited = [e["data"] for e in await portal.events("profile.user_invited") if e["data"]["user_id"] == user_id]
    return _token(invited[nth]["set_password_url"])


async def _accept(portal: ProfileHarness, token: str) -> tuple[int, Any]:
    return await portal.browser().post("/api/auth/invitation/accept", {
        "token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})


async def _walk(admin: Browser, path: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a paged list, page after page; each page holds at most `limit` items."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    sep = "&" if "?" in path else "?"
    for _ in range(1000):
        url = f"{path}{sep}limit={limit}" + (f"&cursor={quote(cursor)}" if cursor else "")
        status, page = await admin.get(url)
        assert status == 200, page
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit, "only the last page is short"
    raise AssertionError("the pages never ended")


async def _assert_422(admin: Browser, path: str, field: str) -> None:
    status, body = await admin.get(path)
    assert status == 422 and field in body["errors"], (path, status, body)


async def _second_admin(portal: ProfileHarness) -> str:
    await create_admin(portal.env["PROFILE_DATABASE_URL"], email="colleague@msp.example", name="Colleague",
                       base_url="http://localhost:8080")
    return str(await portal.db.fetchval("SELECT id FROM profile.users WHERE email = 'colleague@msp.example'"))


async def test_the_console_endpoints_refuse_client_users_and_strangers(portal: ProfileHarness) -> None:
    user = await portal.signed_in(DEMO_EMAIL)
    demo_client = str(await portal.db.fetchval("SELECT client_id FROM profile.users WHERE id = $1",
                                               uuid.UUID(portal.demo_id)))
    calls = [("GET", f"/api/admin/clients/{demo_client}"), ("GET", "/api/admin/clients?limit=5"),
             ("GET", f"/api/admin/users/{portal.demo_id}"), ("GET", "/api/admin/users?limit=5"),
             ("GET", f"/api/admin/users/{portal.demo_id}/audit?limit=5"),
             ("POST", f"/api/admin/users/{portal.demo_id}/invitation"),
             ("POST", f"/api/admin/users/{portal.demo_id}/deactivate"),
             ("POST", f"/api/admin/users/{portal.admin_id}/deactivate"),
             ("POST", f"/api/admin/users/{portal.demo_id}/reactivate")]
    for method, path in calls:
        assert (await user.call(method, path))[0] == 403, path
        assert (await portal.browser().call(method, path))[0] == 401, path
    assert await portal.db.fetchval("SELECT active FROM profile.users WHERE id = $1", uuid.UUID(portal.admin_id))
    assert (await user.get("/api/profile"))[0] == 200, "the refused calls changed nothing"


async def test_a_client_with_its_counts(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    client = await _client(admin, "Counted Ltd")
    status, detail = await admin.get(f"/api/admin/clients/{client['id']}")
    assert status == 200
    assert detail == {**client, "user_count": 0, "two_factor_count": 0, "sso": None}
    users = [(await _invite(portal, admin, client["id"], f"u{i}@counted.example"))[0] for i in range(3)]
    await portal.raise_two_factor(users[1]["id"])
    status, detail = await admin.get(f"/api/admin/clients/{client['id']}")
    assert (detail["user_count"], detail["two_factor_count"]) == (3, 1)
    for bad in (str(uuid.uuid4()), "nope", "0" * 36, "%00"):
        assert (await admin.get(f"/api/admin/clients/{bad}"))[0] == 404, bad


async def test_a_client_shows_its_single_sign_on_without_the_secret(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    client = await _client(admin, "Federated Ltd")
    idp = await OidcProvider().start()
    issuer = idp.issuer
    try:
        settings = {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "email_domains": ["federated.example"], "password_sign_in": "disabled", "trust_idp_mfa": True}
        status, body, _ = await admin.call("PUT", f"/api/admin/clients/{client['id']}/sso", settings)
        assert status == 200, body
    finally:
        await idp.close()
    status, detail = await admin.get(f"/api/admin/clients/{client['id']}")
    assert detail["sso"] == {"issuer": issuer, "client_id": CLIENT_ID, "email_domains": ["federated.example"],
                             "password_sign_in": "disabled", "trust_idp_mfa": True}
    assert CLIENT_SECRET not in json.dumps(detail)


async def test_clients_are_paged_in_a_stable_order_with_counts_and_search(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    # Equal names in any case tie on lower(name): the id orders them, so no page repeats or skips one.
    names = [f"Client {i:02d}" for i in range(23)] + ["acme", "ACME", "Acme", "100% Fish_Co"]
    for name in names:
        await _client(admin, name)
    plain = (await admin.get("/api/admin/clients"))[1]
    assert len(plain) == len(names) + 1  # and Demo Client Co
    for limit in (1, 5, 100):
        walked = await _walk(admin, "/api/admin/clients", limit)
        assert [{"id": c["id"], "name": c["name"]} for c in walked] == plain, limit
    demo = next(c for c in await _walk(admin, "/api/admin/clients", 10) if c["name"] == "Demo Client Co")
    assert (demo["user_count"], demo["two_factor_count"]) == (1, 0)

    status, first = await admin.get("/api/admin/clients?limit=3")
    assert status == 200 and len(first["items"]) == 3
    await _client(admin, "0 inserted before the cursor")  # sorts first: the next page is not shifted by it
    status, second = await admin.get(f"/api/admin/clients?limit=3&cursor={quote(first['next_cursor'])}")
    assert [c["name"] for c in second["items"]] == [c["name"] for c in plain[3:6]]

    found = await _walk(admin, f"/api/admin/clients?q={quote('acme')}", 2)
    assert sorted(c["name"] for c in found) == ["ACME", "Acme", "acme"]
    # The search is literal: % and _ are not wildcards.
    assert [c["name"] for c in await _walk(admin, f"/api/admin/clients?q={quote('0% F')}", 5)] == ["100% Fish_Co"]
    assert [c["name"] for c in await _walk(admin, "/api/admin/clients?q=_", 5)] == ["100% Fish_Co"]
    assert (await admin.get("/api/admin/clients?limit=100"))[1]["next_cursor"] is None

    for bad in BAD_LIMITS:
        await _assert_422(admin, f"/api/admin/clients?limit={quote(bad)}", "limit")
    for bad in BAD_CURSORS:
        await _assert_422(admin, f"/api/admin/clients?cursor={quote(bad)}", "cursor")
    await _assert_422(admin, f"/api/admin/clients?limit=5&q={quote(chr(0))}", "q")


async def test_users_are_paged_with_their_state(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    client = await _client(admin, "Paged Ltd")
    other = await _client(admin, "Other Ltd")
    for i in range(7):  # same names: the address orders them
        await _invite(portal, admin, client["id"], f"same-{i}@paged.example", name="Sam Same")
    await _invite(portal, admin, other["id"], "elsewhere@other.example")
    plain = (await admin.get(f"/api/admin/users?client_id={client['id']}"))[1]
    walked = await _walk(admin, f"/api/admin/users?client_id={client['id']}", 3)
    assert [u["id"] for u in walked] == [u["id"] for u in plain] and len(walked) == 7
    assert all(u["invitation"]["state"] == "pending" and u["active"] is True and u["last_sign_in_at"] is None
               for u in walked)
    assert {k: v for k, v in walked[0].items() if k not in ("active", "last_sign_in_at", "invitation")} == plain[0]

    everyone = await _walk(admin, "/api/admin/users", 4)
    assert [u["id"] for u in everyone] == [u["id"] for u in (await admin.get("/api/admin/users"))[1]]
    assert len(everyone) == 10
    by_email = {u["email"]: u for u in everyone}
    assert by_email[DEMO_EMAIL]["invitation"]["state"] == "accepted"
    assert by_email[ADMIN_EMAIL]["last_sign_in_at"] is not None, "the admin signed in above"
    assert [u["email"] for u in await _walk(admin, "/api/admin/users?q=ELSEWHERE", 5)] == ["elsewhere@other.example"]
    assert await _walk(admin, f"/api/admin/users?client_id={client['id']}&q=other", 5) == []

    for bad in BAD_LIMITS:
        await _assert_422(admin, f"/api/admin/users?limit={quote(bad)}", "limit")
    for bad in (*BAD_CURSORS, _cursor("clients", "a", str(uuid.uuid4()))):
        if bad != _cursor("users", "a", "b"):  # that one is a valid users cursor
            await _assert_422(admin, f"/api/admin/users?cursor={quote(bad)}", "cursor")
    await _assert_422(admin, "/api/admin/users?limit=5&client_id=nope", "client_id")
    status, page = await admin.get(f"/api/admin/users?limit=5&cursor={quote(_cursor('users', 'zzzz', 'z'))}")
    assert status == 200 and page == {"items": [], "next_cursor": None}


async def test_a_user_with_last_sign_in_and_invitation(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    await portal.signed_in(DEMO_EMAIL)
    status, demo = await admin.get(f"/api/admin/users/{portal.demo_id}")
    assert status == 200
    last = await portal.db.fetchval("SELECT max(at) FROM profile.audit_log WHERE user_id = $1 AND type = "
                                    "'signed_in'", uuid.UUID(portal.demo_id))
    assert demo["last_sign_in_at"] == last.isoformat().replace("+00:00", "Z")
    assert demo["active"] is True and demo["invitation"] == {"state": "accepted", "expires_at": None}
    assert demo["email"] == DEMO_EMAIL and demo["client"]["name"] == "Demo Client Co"

    client = await _client(admin, "Invited Ltd")
    user, token = await _invite(portal, admin, client["id"], "new.starter@invited.example")
    status, fresh = await admin.get(f"/api/admin/users/{user['id']}")
    assert fresh["invitation"]["state"] == "pending" and fresh["last_sign_in_at"] is None
    assert fresh["invitation"]["expires_at"].endswith("Z")
    await portal.db.execute("UPDATE profile.password_tokens SET expires_at = now() - interval '1 second' "
                            "WHERE user_id = $1", uuid.UUID(user["id"]))
    assert (await admin.get(f"/api/admin/users/{user['id']}"))[1]["invitation"]["state"] == "expired"
    status, body = await _accept(portal, token)
    assert status == 400 and body["type"].endswith("invalid-reset-token")

    assert (await admin.get(f"/api/admin/users/{portal.admin_id}"))[1]["role"] == "msp_admin", "admins may look"
    for bad in (str(uuid.uuid4()), "nope", "%20", "a" * 300):
        assert (await admin.get(f"/api/admin/users/{bad}"))[0] == 404, bad


async def test_resending_an_invitation_voids_the_old_link(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    client = await _client(admin, "Resent Ltd")
    user, old = await _invite(portal, admin, client["id"], "late.reader@resent.example")
    status, body, response = await admin.call("POST", f"/api/admin/users/{user['id']}/invitation")
    assert status == 202 and body is None and response.headers["Cache-Control"] == "no-store"
    new = await _invite_token(portal, user["id"])
    assert new != old
    status, body = await _accept(portal, old)
    assert status == 400 and body["type"].endswith("invalid-reset-token"), "the old link is void"
    assert (await admin.get(f"/api/admin/users/{user['id']}"))[1]["invitation"]["state"] == "pending"
    assert (await _accept(portal, new))[0] == 204
    assert (await admin.get(f"/api/admin/users/{user['id']}"))[1]["invitation"]["state"] == "accepted"
    status, body = await admin.post(f"/api/admin/users/{user['id']}/invitation")
    assert status == 409, "the account has a password now"
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/invitation"))[0] == 409
    assert (await admin.post(f"/api/admin/users/{uuid.uuid4()}/invitation"))[0] == 404
    assert (await admin.post("/api/admin/users/nope/invitation"))[0] == 404
    assert "invitation_resent" in await portal.audit_types(user["id"])
    await portal.browser().login("late.reader@resent.example", NEW_PASSWORD)


async def _wait_audit(portal: ProfileHarness, user_id: str, type_: str) -> None:
    deadline = time.monotonic() + 10
    while type_ not in await portal.audit_types(user_id):
        assert time.monotonic() < deadline, f"no {type_} audit entry"
        await asyncio.sleep(0.05)


async def test_a_deactivated_account_is_refused_everywhere_until_reactivated(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    demo = await portal.signed_in(DEMO_EMAIL)
    another = await portal.signed_in(DEMO_EMAIL)
    wrong = await portal.browser().call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": "wrong 1"})

    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/deactivate"))[0] == 204
    for browser in (demo, another):
        assert (await browser.get("/api/profile"))[0] == 401, "every session ended at once"
    status, detail = await admin.get(f"/api/admin/users/{portal.demo_id}")
    assert detail["active"] is False
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/deactivate"))[0] == 204, "twice is fine"
    assert (await portal.audit_types(portal.demo_id)).count("deactivated") == 1

    # Password: exactly the wrong-password answer.
    refused = await portal.browser().call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert wrong[0] == 401 and (refused[0], refused[1]) == (wrong[0], wrong[1])
    # A passkey, too.
    passkey = portal.browser()
    assert (await passkey.post("/api/auth/login/passkey/options"))[0] == 200
    status, body = await passkey.post("/api/auth/login/passkey", {"credential": {"id": "passkey",
                                                                                 "user": portal.demo_id}})
    assert status == 401 and (await passkey.get("/api/profile"))[0] == 401
    # A reset request sends nothing (the control, an active account asked after it, is sent its link).
    control_client = await _client(admin, "Control Ltd")
    control, token = await _invite(portal, admin, control_client["id"], "control@control.example")
    assert (await _accept(portal, token))[0] == 204
    anyone = portal.browser()
    assert (await anyone.post("/api/auth/password-reset", {"email": DEMO_EMAIL}))[0] == 202
    assert (await anyone.post("/api/auth/password-reset", {"email": "control@control.example"}))[0] == 202
    await _wait_audit(portal, control["id"], "password_reset_requested")
    resets = [e["data"]["user_id"] for e in await portal.events("profile.password_reset_requested")]
    assert resets == [control["id"]], "nothing for the deactivated account"
    # An invitation link (one issued while inactive) is refused; the admin cannot resend one either.
    invite_id = await _uninvited_inactive(portal, admin)
    assert (await admin.post(f"/api/admin/users/{invite_id}/invitation"))[0] == 409
    async with portal.db.transaction():
        await portal.db.execute("SET LOCAL search_path TO profile")
        raw, _ = await tokens_repo.issue(portal.db, invite_id, tokens_repo.INVITE, lifetime_seconds=3600)
    status, body = await _accept(portal, raw)
    assert status == 400 and body["type"].endswith("invalid-reset-token")

    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/reactivate"))[0] == 204
    assert (await admin.get(f"/api/admin/users/{portal.demo_id}"))[1]["active"] is True
    back = await portal.signed_in(DEMO_EMAIL)  # the same password as before
    assert (await back.get("/api/profile"))[1]["email"] == DEMO_EMAIL
    types = await portal.audit_types(portal.demo_id)
    assert types.index("deactivated") < types.index("reactivated")
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/reactivate"))[0] == 204, "twice is fine"


async def _uninvited_inactive(portal: ProfileHarness, admin: Browser) -> str:
    """A user whose invitation is still open, deactivated (which voids that link)."""
    client = await _client(admin, "Leaver Ltd")
    user, token = await _invite(portal, admin, client["id"], "leaver@leaver.example")
    assert (await admin.post(f"/api/admin/users/{user['id']}/deactivate"))[0] == 204
    status, body = await _accept(portal, token)
    assert status == 400 and body["type"].endswith("invalid-reset-token"), "deactivating voided the open link"
    assert (await admin.get(f"/api/admin/users/{user['id']}"))[1]["invitation"]["state"] == "expired"
    return str(user["id"])


async def test_deactivation_ends_a_second_factor_sign_in_and_a_viewing_admin(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    pending = portal.browser()
    assert (await pending.login(DEMO_EMAIL))["state"] == "second_factor_required"
    admin = await portal.signed_in(ADMIN_EMAIL)
    viewer = await portal.signed_in(ADMIN_EMAIL)
    assert (await viewer.post(f"/api/admin/users/{portal.demo_id}/impersonate", {"reason": "Ticket 7"}))[0] == 200
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/deactivate"))[0] == 204
    assert (await pending.post("/api/auth/login/totp", {"code": "123456"}))[0] == 401
    assert (await viewer.get("/api/profile"))[0] == 401, "the admin's session viewing the account ended too"
    assert (await admin.get("/api/profile"))[0] == 200


async def test_admins_cannot_deactivate_admins(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    colleague = await _second_admin(portal)
    for action in ("deactivate", "reactivate"):
        status, body = await admin.post(f"/api/admin/users/{colleague}/{action}")
        assert status == 403 and "portal-admin" in body["detail"], body
        status, body = await admin.post(f"/api/admin/users/{portal.admin_id}/{action}")
        assert status == 409, "nor themselves"
        assert (await admin.post(f"/api/admin/users/{uuid.uuid4()}/{action}"))[0] == 404
        assert (await admin.post(f"/api/admin/users/x%00y/{action}"))[0] == 404
    assert await portal.db.fetchval("SELECT bool_and(active) FROM profile.users WHERE role = 'msp_admin'")
    assert (await admin.get("/api/profile"))[0] == 200


async def test_the_audit_log_is_paged_newest_first_and_filtered_by_type(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    for _ in range(4):
        await portal.signed_in(DEMO_EMAIL)
    # Entries of one instant (one transaction): the id orders them.
    await portal.db.execute("INSERT INTO profile.audit_log (user_id, at, type, detail) "
                            "SELECT $1, now(), 'note', 'n' || g FROM generate_series(1, 5) g",
                            uuid.UUID(portal.demo_id))
    path = f"/api/admin/users/{portal.demo_id}/audit"
    plain = (await admin.get(path))[1]
    assert len(plain) >= 9 and set(plain[0]) == {"at", "type", "ip", "detail"}
    for limit in (1, 2, 4):
        assert await _walk(admin, path, limit) == plain
    assert [e["detail"] for e in plain if e["type"] == "note"] == [f"n{i}" for i in range(5, 0, -1)]
    signed = await _walk(admin, f"{path}?type=signed_in", 3)
    assert len(signed) == 4 and {e["type"] for e in signed} == {"signed_in"}
    assert (await admin.get(f"{path}?type=signed_in"))[1] == signed, "the plain list filters too"
    assert await _walk(admin, f"{path}?type=nothing-of-the-kind", 3) == []

    for bad in BAD_LIMITS:
        await _assert_422(admin, f"{path}?limit={quote(bad)}", "limit")
    for bad in ("garbage", _cursor("audit", "yesterday", 1), _cursor("audit", "2026-01-01T00:00:00", 1),
                _cursor("audit", "2026-01-01T00:00:00+00:00", -1), _cursor("audit", "2026-01-01T00:00:00+00:00", 1.5),
                _cursor("audit", "2026-01-01T00:00:00+00:00", 2**70), _cursor("audit", "2026-01-01T00:00:00+00:00"),
                _cursor("audit", "2026-01-01T00:00:00+00:00", True), _cursor("clients", "a", str(uuid.uuid4()))):
        await _assert_422(admin, f"{path}?cursor={quote(bad)}", "cursor")
    await _assert_422(admin, f"{path}?type={quote(chr(0))}", "type")
    await _assert_422(admin, f"{path}?type={'x' * 101}", "type")
    status, page = await admin.get(f"{path}?cursor={quote(_cursor('audit', '1999-01-01T00:00:00+00:00', 1))}")
    assert status == 200 and page == {"items": [], "next_cursor": None}
    assert (await admin.get(f"/api/admin/users/{uuid.uuid4()}/audit?limit=5"))[0] == 404
    assert (await admin.get("/api/admin/users/nope/audit?limit=5"))[0] == 404
