"""The MSP admin API: clients, users and invitations, impersonation, two-factor reset, audit; the mfa
event consumer; the create-admin command and the demo seed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from portal_shared import tokens
from portal_shared.events import Envelope, MfaResetByAdmin, TwoFactorEnabled
from profile_service.bootstrap import seed_demo
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, ProfileHarness

NEW_PASSWORD = "Granite-Harbour-19"


def _token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def test_client_users_get_403_and_strangers_401(portal: ProfileHarness) -> None:
    user = await portal.signed_in(DEMO_EMAIL)
    for method, path in [("GET", "/api/admin/clients"), ("POST", "/api/admin/clients"), ("GET", "/api/admin/users"),
                         ("POST", f"/api/admin/users/{portal.admin_id}/impersonate"),
                         ("GET", f"/api/admin/users/{portal.demo_id}/audit")]:
        assert (await user.call(method, path, {"name": "x"} if method == "POST" else None))[0] == 403, path
        assert (await portal.browser().call(method, path))[0] == 401, path


async def test_clients_users_and_invitations(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    status, client = await admin.post("/api/admin/clients", {"name": "Acme Ltd"})
    assert status == 201 and client["name"] == "Acme Ltd"
    assert (await admin.post("/api/admin/clients", {"name": ""}))[0] == 422
    names = [c["name"] for c in (await admin.get("/api/admin/clients"))[1]]
    assert names == ["Acme Ltd", "Demo Client Co"]

    new = {"email": "Jo.Bloggs@acme.example", "name": "Jo Bloggs", "client_id": client["id"], "title": "Buyer",
           "mobile": "+44 20 7946 0123"}
    status, user = await admin.post("/api/admin/users", new)
    assert status == 201, user
    assert user == {"id": user["id"], "email": "Jo.Bloggs@acme.example", "name": "Jo Bloggs", "role": "client_user",
                    "client": client, "title": "Buyer", "mobile": "+44 20 7946 0123", "phone": None,
                    "two_factor_enabled": False, "created_at": user["created_at"]}
    status, body = await admin.post("/api/admin/users", {**new, "email": "jo.bloggs@ACME.example"})
    assert status == 409
    status, body = await admin.post("/api/admin/users", {**new, "email": "bad", "client_id": str(uuid.uuid4())})
    assert status == 422 and set(body["errors"]) == {"email"}
    status, body = await admin.post("/api/admin/users", {**new, "email": "x@acme.example",
                                                         "client_id": str(uuid.uuid4())})
    assert status == 422 and set(body["errors"]) == {"client_id"}

    created = await portal.events("profile.user_created")
    assert {"user_id": user["id"], "email": user["email"], "name": "Jo Bloggs"} in [e["data"] for e in created]
    invited = [e["data"] for e in await portal.events("profile.user_invited")]
    assert len(invited) == 1 and invited[0]["user_id"] == user["id"]
    assert invited[0]["set_password_url"].startswith("http://localhost:8080/portal/accept-invite?token=")
    token = _token(invited[0]["set_password_url"])
    hours = await portal.db.fetchval("SELECT extract(epoch FROM expires_at - created_at) / 3600 "
                                     "FROM profile.password_tokens WHERE purpose = 'invite'")
    assert round(hours) == 72

    anyone = portal.browser()
    accept = "/api/auth/invitation/accept"
    status, body = await anyone.post(accept, {"token": token, "new_password": "short", "confirm_password": "short"})
    assert status == 422
    assert (await anyone.post(accept, {"token": token, "new_password": NEW_PASSWORD,
                                       "confirm_password": NEW_PASSWORD}))[0] == 204
    status, body = await anyone.post(accept, {"token": token, "new_password": NEW_PASSWORD,
                                              "confirm_password": NEW_PASSWORD})
    assert status == 400 and body["type"].endswith("invalid-reset-token")
    await portal.browser().login("jo.bloggs@acme.example", NEW_PASSWORD)

    listed = (await admin.get(f"/api/admin/users?client_id={client['id']}"))[1]
    assert [u["email"] for u in listed] == ["Jo.Bloggs@acme.example"]
    assert [u["email"] for u in (await admin.get("/api/admin/users?q=demo"))[1]] == [DEMO_EMAIL]
    assert len((await admin.get("/api/admin/users"))[1]) == 3
    assert (await admin.get("/api/admin/users?client_id=nope"))[0] == 422

    status, patched = await admin.patch(f"/api/admin/users/{user['id']}",
                                        {"email": "jo@acme.example", "title": None, "phone": "+44 20 7946 0999"})
    assert status == 200 and patched["email"] == "jo@acme.example" and patched["title"] is None
    assert patched["phone"] == "+44 20 7946 0999"
    assert (await admin.patch(f"/api/admin/users/{user['id']}", {"email": DEMO_EMAIL.upper()}))[0] == 409
    assert (await admin.patch(f"/api/admin/users/{user['id']}", {"name": ""}))[0] == 422
    assert (await admin.patch(f"/api/admin/users/{uuid.uuid4()}", {"name": "X"}))[0] == 404
    updated = [e["data"] for e in await portal.events("profile.user_updated")]
    assert updated == [{"user_id": user["id"], "email": "jo@acme.example", "name": "Jo Bloggs"}]


async def test_impersonation(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    path = f"/api/admin/users/{portal.demo_id}/impersonate"
    status, body = await admin.post(path, {})
    assert status == 422 and "reason" in body["errors"]
    assert (await admin.post(f"/api/admin/users/{portal.admin_id}/impersonate", {"reason": "checking"}))[0] == 403
    status, session = await admin.post(path, {"reason": "Ticket 4711: cannot see invoices"})
    assert status == 200
    assert session["user"]["id"] == portal.demo_id
    assert session["impersonator"] == {"id": portal.admin_id, "name": "MSP Admin", "email": ADMIN_EMAIL}
    status, profile = await admin.get("/api/profile")
    assert profile["email"] == DEMO_EMAIL and profile["impersonator"]["id"] == portal.admin_id
    assert (await admin.get("/api/auth/session"))[1]["impersonator"]["email"] == ADMIN_EMAIL

    status, body = await admin.post("/api/profile/password", {"current_password": PASSWORD,
                                                               "new_password": NEW_PASSWORD,
                                                               "confirm_password": NEW_PASSWORD})
    assert status == 403
    assert (await admin.post("/api/auth/reauth", {"password": PASSWORD}))[0] == 403
    assert (await admin.post(path, {"reason": "again"}))[0] == 409

    cookie = f"portal_session={admin.cookie('portal_session')}"
    response = await portal.client.get("/internal/auth", headers={"Cookie": cookie})
    claims = tokens.verify(portal.env["SERVICE_AUTH_KEY"], tokens.IDENTITY, response.headers["X-Portal-Identity"])
    assert claims["sub"] == portal.demo_id
    assert claims["imp"] == {"id": portal.admin_id, "name": "MSP Admin", "email": ADMIN_EMAIL}
    assert response.headers["X-Portal-Role"] == "msp_admin", "the admin console stays open while viewing"

    events = [e["data"] for e in await portal.events("profile.impersonation_started")]
    assert events == [{"user_id": portal.demo_id, "admin_id": portal.admin_id, "admin_name": "MSP Admin",
                       "reason": "Ticket 4711: cannot see invoices"}]

    status, session = await admin.post("/api/admin/impersonation/stop")
    assert status == 200 and session["user"]["id"] == portal.admin_id and session["impersonator"] is None
    assert (await admin.post("/api/admin/impersonation/stop"))[0] == 409
    status, audit = await admin.get(f"/api/admin/users/{portal.demo_id}/audit")
    assert status == 200
    assert [a["type"] for a in audit][:2] == ["impersonation_stopped", "impersonation_started"]
    assert "Ticket 4711" in audit[1]["detail"] and audit[0]["at"].endswith("Z")
    assert set(audit[0]) == {"at", "type", "ip", "detail"}
    assert (await admin.get(f"/api/admin/users/{uuid.uuid4()}/audit"))[0] == 404


async def test_admin_resets_two_factor_through_mfa(portal: ProfileHarness) -> None:
    await portal.enable_totp(portal.demo_id)
    admin = await portal.signed_in(ADMIN_EMAIL)
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/mfa/reset"))[0] == 204
    assert portal.mfa.resets == [(portal.demo_id, portal.admin_id)]
    assert (await portal.browser().login(DEMO_EMAIL))["state"] == "signed_in"
    assert "two_factor_reset" in await portal.audit_types(portal.demo_id)
    assert (await admin.post(f"/api/admin/users/{uuid.uuid4()}/mfa/reset"))[0] == 404


async def _two_factor(portal: ProfileHarness) -> bool:
    return bool(await portal.db.fetchval("SELECT two_factor_enabled FROM profile.users WHERE id = $1",
                                         uuid.UUID(portal.demo_id)))


async def _until(portal: ProfileHarness, expected: bool) -> None:
    deadline = time.monotonic() + 10
    while await _two_factor(portal) != expected:
        assert time.monotonic() < deadline, f"two_factor_enabled never became {expected}"
        await asyncio.sleep(0.05)


async def test_mfa_events_keep_the_admin_lists_two_factor_column(portal: ProfileHarness) -> None:
    enabled = Envelope.wrap(TwoFactorEnabled(user_id=portal.demo_id, method="totp"), source="mfa")
    await portal.publish(enabled)
    await _until(portal, True)
    admin = await portal.signed_in(ADMIN_EMAIL)
    users = {u["email"]: u for u in (await admin.get("/api/admin/users"))[1]}
    assert users[DEMO_EMAIL]["two_factor_enabled"] is True
    reset = Envelope.wrap(MfaResetByAdmin(user_id=portal.demo_id, admin_id=portal.admin_id), source="mfa")
    await portal.publish(reset)
    await _until(portal, False)
    # An event older than the reset (another message: the inbox does not dedupe it), delivered late, and
    # handled (publish waits for its inbox row): no effect.
    late = dataclasses.replace(Envelope.wrap(TwoFactorEnabled(user_id=portal.demo_id, method="totp"), source="mfa"),
                               occurred_at=enabled.occurred_at)
    await portal.publish(late)
    assert await _two_factor(portal) is False


async def test_create_admin_command_prints_a_one_time_link(portal: ProfileHarness) -> None:
    env = {**os.environ, "DATABASE_URL": portal.env["PROFILE_DATABASE_URL"], "PORTAL_BASE_URL": "http://localhost:8080"}
    args = [sys.executable, "-c", "from profile_service.admin_cli import main; main()", "create-admin",
            "--email", "boss@msp.example", "--name", "Boss Admin"]
    result = await asyncio.to_thread(subprocess.run, args, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    link = next(word for word in result.stdout.split() if word.startswith("http://localhost:8080/portal/accept-invite"))
    again = await asyncio.to_thread(subprocess.run, args, env=env, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    anyone = portal.browser()
    assert (await anyone.post("/api/auth/invitation/accept", {"token": _token(link), "new_password": NEW_PASSWORD,
                                                              "confirm_password": NEW_PASSWORD}))[0] == 204
    boss = await portal.signed_in("boss@msp.example", NEW_PASSWORD)
    assert (await boss.get("/api/auth/session"))[1]["user"]["role"] == "msp_admin"
    assert (await boss.get("/api/admin/clients"))[0] == 200


async def test_seed_demo_is_idempotent_and_sets_the_demo_password(portal: ProfileHarness) -> None:
    report = await seed_demo(portal.env["PROFILE_DATABASE_URL"], password="another-demo-pw")
    assert report.created == [] and report.passwords_set
    assert await portal.db.fetchval("SELECT count(*) FROM profile.users") == 2
    assert await portal.db.fetchval("SELECT count(*) FROM profile.clients") == 1
    await portal.browser().login(DEMO_EMAIL, "another-demo-pw")
    await portal.browser().login(ADMIN_EMAIL, "another-demo-pw")
    await seed_demo(portal.env["PROFILE_DATABASE_URL"], password=None)
    await portal.browser().login(DEMO_EMAIL, "another-demo-pw")
    # What `make up` runs at every start.
    env = {**os.environ, "DATABASE_URL": portal.env["PROFILE_DATABASE_URL"], "DEMO_PASSWORD": "third-demo-pw"}
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "profile_service", "seed-demo"], env=env,
                                     capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    await portal.browser().login(ADMIN_EMAIL, "third-demo-pw")


async def test_an_impersonation_reason_is_stored_as_written(portal: ProfileHarness) -> None:
    """A reason of "now" once hit the session update's string sentinel and stored a timestamp instead."""
    admin = await portal.signed_in(ADMIN_EMAIL)
    assert (await admin.post(f"/api/admin/users/{portal.demo_id}/impersonate", {"reason": "now"}))[0] == 200
    assert await portal.db.fetchval("SELECT impersonation_reason FROM profile.sessions "
                                    "WHERE impersonated_user_id = $1", uuid.UUID(portal.demo_id)) == "now"
