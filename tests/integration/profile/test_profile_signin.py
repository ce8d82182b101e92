"""Sign-in, sessions and CSRF of the profile service, on real Postgres and RabbitMQ."""

from __future__ import annotations

import statistics
import time
import uuid

from portal_shared import tokens
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, PORTAL_ORIGIN, ProfileHarness

from tests.support.services import running_service


async def test_sign_in_sets_httponly_session_and_readable_csrf_cookie(portal: ProfileHarness) -> None:
    browser = portal.browser()
    status, body, response = await browser.call("POST", "/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert (status, body) == (200, {"state": "signed_in"})
    cookies = response.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("portal_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("portal_csrf="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie and "Path=/" in session_cookie
    assert "HttpOnly" not in csrf_cookie
    raw = browser.cookie("portal_session") or ""
    assert len(raw) >= 43
    stored = await portal.db.fetchval("SELECT count(*) FROM profile.sessions WHERE id_hash = $1", raw.encode())
    assert stored == 0, "the raw session id must never be stored"
    status, session = await browser.get("/api/auth/session")
    assert status == 200
    assert session["user"] == {"id": portal.demo_id, "email": DEMO_EMAIL, "name": "Demo User", "role": "client_user",
                               "has_password": True, "sso": None}
    assert session["state"] == "signed_in" and session["impersonator"] is None
    assert session["csrf_token"] == browser.cookie("portal_csrf")
    assert "signed_in" in await portal.audit_types(portal.demo_id)


async def test_wrong_password_and_unknown_email_answer_alike(portal: ProfileHarness) -> None:
    browser = portal.browser()
    wrong = await browser.post("/api/auth/login", {"email": DEMO_EMAIL, "password": "not-the-password"})
    unknown = await browser.post("/api/auth/login", {"email": "nobody@client.example", "password": "not-the-password"})
    upper = await browser.post("/api/auth/login", {"email": DEMO_EMAIL.upper(), "password": PASSWORD})
    assert wrong[0] == unknown[0] == 401
    assert wrong[1] == unknown[1]
    assert wrong[1]["type"].endswith("invalid-credentials")
    assert upper[0] == 200, "email is case-insensitive"
    assert (await browser.post("/api/auth/login", {"email": DEMO_EMAIL}))[0] == 422
    assert (await browser.post("/api/auth/login", None, headers={"Content-Type": "application/json"}))[0] == 422
    status, _, _ = await browser.call("POST", "/api/auth/login", headers={"Content-Type": "application/json"})
    assert status == 422
    fresh = portal.browser()
    bad_json = await fresh.http.post(fresh.base_url + "/api/auth/login", data=b"{nope",
                                     headers={"Content-Type": "application/json"})
    assert bad_json.status == 400


async def test_unknown_email_takes_as_long_as_a_wrong_password(portal: ProfileHarness) -> None:
    """Timing: a dummy hash is verified for unknown (and locked) accounts, so the medians match."""
    browser = portal.browser()

    async def timed(email: str) -> float:
        started = time.perf_counter()
        status, _ = await browser.post("/api/auth/login", {"email": email, "password": "wrong-password-123"})
        assert status == 401
        return time.perf_counter() - started

    known, unknown = [], []
    for i in range(14):
        known.append(await timed(ADMIN_EMAIL))
        unknown.append(await timed(f"ghost{i}@client.example"))
    a, b = statistics.median(known), statistics.median(unknown)
    assert abs(a - b) < 0.3 * max(a, b), (a, b)
    # Without the dummy hash an unknown email would answer several times faster.
    assert min(a, b) > 0.004


async def test_csrf_and_origin_are_enforced(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    status, body = await browser.patch("/api/profile", {"name": "X"}, csrf=False)
    assert status == 403 and body["type"].endswith("csrf-failed")
    status, _ = await browser.patch("/api/profile", {"name": "X"}, csrf=False, headers={"X-CSRF-Token": "forged"})
    assert status == 403
    status, _ = await browser.patch("/api/profile", {"name": "Demo User"}, headers={"Origin": "https://evil.example"})
    assert status == 403
    status, _ = await browser.patch("/api/profile", {"name": "Demo User"}, headers={"Origin": PORTAL_ORIGIN})
    assert status == 200
    status, _ = await browser.get("/api/profile", headers={"Origin": "https://evil.example"})
    assert status == 403
    stranger = portal.browser()
    status, _ = await stranger.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD},
                                    headers={"Origin": "https://evil.example"})
    assert status == 403


async def test_logout_ends_the_session_server_side(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    raw = browser.cookie("portal_session")
    assert (await browser.post("/api/auth/logout"))[0] == 204
    replay = portal.browser()
    replay.http.cookie_jar.update_cookies({"portal_session": raw or ""})
    assert (await replay.get("/api/profile"))[0] == 401
    assert (await browser.get("/api/auth/session"))[0] == 401


async def test_sessions_are_listed_and_revoked(portal: ProfileHarness) -> None:
    first = await portal.signed_in()
    second = await portal.signed_in()
    third = await portal.signed_in()
    status, listed = await first.get("/api/auth/sessions")
    assert status == 200 and len(listed) == 3
    assert [s["current"] for s in listed].count(True) == 1
    assert set(listed[0]) == {"id", "current", "created_at", "last_seen_at", "user_agent", "ip", "method"}
    assert {s["method"] for s in listed} == {"password"}
    assert listed[0]["created_at"].endswith("Z")
    second_id = next(s["id"] for s in (await second.get("/api/auth/sessions"))[1] if s["current"])
    assert (await first.delete(f"/api/auth/sessions/{second_id}"))[0] == 204
    assert (await second.get("/api/profile"))[0] == 401
    assert (await first.delete(f"/api/auth/sessions/{second_id}"))[0] == 404
    assert (await first.delete("/api/auth/sessions/not-a-uuid"))[0] == 404
    admin = await portal.signed_in(ADMIN_EMAIL)
    admin_id = next(s["id"] for s in (await admin.get("/api/auth/sessions"))[1])
    assert (await first.delete(f"/api/auth/sessions/{admin_id}"))[0] == 404, "not someone else's session"
    assert (await first.delete("/api/auth/sessions"))[0] == 204
    assert (await third.get("/api/profile"))[0] == 401
    assert (await first.get("/api/profile"))[0] == 200
    assert len((await first.get("/api/auth/sessions"))[1]) == 1


async def test_idle_and_absolute_timeouts(portal: ProfileHarness) -> None:
    idle = await portal.signed_in()
    absolute = await portal.signed_in()
    await portal.db.execute("UPDATE profile.sessions SET last_seen_at = now() - interval '31 minutes' "
                            "WHERE id_hash = sha256($1::text::bytea)", idle.cookie("portal_session"))
    await portal.db.execute("UPDATE profile.sessions SET expires_at = now() - interval '1 second' "
                            "WHERE id_hash = sha256($1::text::bytea)", absolute.cookie("portal_session"))
    assert (await idle.get("/api/profile"))[0] == 401
    assert (await absolute.get("/api/profile"))[0] == 401
    fresh = await portal.signed_in()
    await portal.db.execute("UPDATE profile.sessions SET last_seen_at = now() - interval '29 minutes' "
                            "WHERE id_hash = sha256($1::text::bytea)", fresh.cookie("portal_session"))
    assert (await fresh.get("/api/profile"))[0] == 200
    assert (await fresh.get("/api/profile"))[0] == 200, "the previous request refreshed last_seen_at"


async def test_internal_auth_gives_the_gateway_a_signed_identity(portal: ProfileHarness) -> None:
    browser = await portal.signed_in()
    cookie = f"portal_session={browser.cookie('portal_session')}; portal_csrf={browser.cookie('portal_csrf')}"
    response = await portal.client.get("/internal/auth", headers={"Cookie": cookie, "X-Original-Method": "GET"})
    assert response.status == 204
    claims = tokens.verify(portal.env["SERVICE_AUTH_KEY"], tokens.IDENTITY, response.headers["X-Portal-Identity"])
    assert claims["sub"] == portal.demo_id and claims["email"] == DEMO_EMAIL and claims["role"] == "client_user"
    assert response.headers["X-Portal-Role"] == "client_user"
    assert claims["imp"] is None and claims["reauth_at"] is None and claims["auth_at"] <= time.time()
    assert claims["exp"] - time.time() <= 60
    unsafe = {"Cookie": cookie, "X-Original-Method": "DELETE"}
    assert (await portal.client.get("/internal/auth", headers=unsafe)).status == 403
    unsafe["X-CSRF-Token"] = browser.cookie("portal_csrf") or ""
    assert (await portal.client.get("/internal/auth", headers=unsafe)).status == 204
    foreign = {**unsafe, "Origin": "https://evil.example"}
    assert (await portal.client.get("/internal/auth", headers=foreign)).status == 403
    assert (await portal.client.get("/internal/auth")).status == 401
    assert (await portal.client.get("/internal/auth", headers={"Cookie": "portal_session=forged"})).status == 401


async def test_verify_password_for_mfa_needs_service_auth_and_counts(portal: ProfileHarness) -> None:
    body = {"user_id": portal.demo_id, "password": PASSWORD}
    assert (await portal.client.post("/internal/verify-password", json=body)).status == 401
    wrong_audience = tokens.service_authorization(portal.env["SERVICE_AUTH_KEY"], issuer="mfa", audience="mfa")
    assert (await portal.client.post("/internal/verify-password", json=body, headers=wrong_audience)).status == 401
    auth = tokens.service_authorization(portal.env["SERVICE_AUTH_KEY"], issuer="mfa", audience="profile")
    response = await portal.client.post("/internal/verify-password", json=body, headers=auth)
    assert (response.status, await response.json()) == (200, {"ok": True})
    for _ in range(10):
        response = await portal.client.post("/internal/verify-password", headers=auth,
                                            json={"user_id": portal.demo_id, "password": "wrong"})
        assert await response.json() == {"ok": False}
    response = await portal.client.post("/internal/verify-password", json=body, headers=auth)
    assert await response.json() == {"ok": False}, "a throttled account gives ok=false"
    response = await portal.client.post("/internal/verify-password", headers=auth,
                                        json={"user_id": str(uuid.uuid4()), "password": "x"})
    assert await response.json() == {"ok": False}


async def test_per_ip_limit_on_auth_endpoints(stack_env: dict[str, str]) -> None:
    async with running_service("profile", stack_env, AUTH_RATE_PER_MINUTE=3) as client:
        statuses = []
        for _ in range(4):
            response = await client.post("/api/auth/login", json={"email": "a@b.example", "password": "x"},
                                         headers={"X-Real-IP": "192.0.2.1"})
            statuses.append(response.status)
        assert statuses == [401, 401, 401, 429]
        assert int(response.headers["Retry-After"]) > 0
        assert (await response.json())["status"] == 429
        other = await client.post("/api/auth/login", json={"email": "a@b.example", "password": "x"},
                                  headers={"X-Real-IP": "192.0.2.2"})
        assert other.status == 401
