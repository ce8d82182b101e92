"""The contract's flows through nginx against the real services, as `make up` runs them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest

from tests.support.portal_client import Mailbox, Portal, link_token, unique_email
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow
NEW_PASSWORD = "a fresh and long passphrase 7"


@pytest.fixture
async def portal(portal_stack: Any) -> AsyncIterator[Portal]:
    client = Portal(portal_stack.base_url)
    yield client
    await client.close()


@pytest.fixture
def mailbox(portal_stack: Any) -> Mailbox:
    return Mailbox(portal_stack.mail_dir)


async def invited_user(portal_stack: Any, mailbox: Mailbox, *, password: str = NEW_PASSWORD) -> str:
    """An MSP admin creates a client and a user; the user accepts the emailed invitation."""
    admin = Portal(portal_stack.base_url)
    try:
        await admin.login("admin@msp.example", DEMO_PASSWORD)
        status, client = await admin.post("/api/admin/clients", {"name": f"Client {unique_email()[:13]}"})
        assert status == 201, client
        address = unique_email()
        status, user = await admin.post("/api/admin/users", {"email": address, "name": "Erin Example",
                                                               "client_id": client["id"], "title": "CFO"})
        assert status == 201, user
    finally:
        await admin.close()
    [invite] = await mailbox.wait_for(address, "profile.user_invited")
    anonymous = Portal(portal_stack.base_url)
    try:
        status, body = await anonymous.post("/api/auth/invitation/accept", {
            "token": link_token(invite, "accept-invite"), "new_password": password, "confirm_password": password})
        assert status == 204, body
    finally:
        await anonymous.close()
    return address


async def test_demo_user_signs_in_and_sees_the_contract_profile(portal: Portal) -> None:
    assert (await portal.login("demo@client.example", DEMO_PASSWORD))["state"] == "signed_in"
    status, profile = await portal.get("/api/profile")
    assert status == 200
    assert profile["email"] == "demo@client.example"
    assert profile["name"] == "Demo User" and profile["initial"] == "D"
    assert profile["company"]["name"] == "Demo Client Co"
    assert profile["title"] == "Office Manager" and profile["mobile"] == "+44 20 7946 0018"
    assert profile["impersonator"] is None


async def test_gateway_hides_internal_paths_and_unknown_api(portal: Portal) -> None:
    for path in ("/internal/auth", "/api/nothing-here", "/api/mfa/../../internal/auth"):
        status, body = await portal.get(path)
        assert status == 404, path
        assert body["status"] == 404


async def test_mfa_needs_a_signed_in_session_at_the_gateway(portal: Portal) -> None:
    status, body = await portal.get("/api/mfa")
    assert status == 401 and body["status"] == 401


async def test_csrf_and_foreign_origin_are_refused(portal: Portal) -> None:
    await portal.login("demo@client.example", DEMO_PASSWORD)
    status, _ = await portal.patch("/api/profile", {"name": "X"}, csrf=False)
    assert status == 403
    status, _ = await portal.patch("/api/profile", {"name": "X"}, headers={"Origin": "https://evil.example"})
    assert status == 403
    status, _ = await portal.post("/api/mfa/totp/setup", csrf=False)
    assert status == 403


async def test_totp_enrolment_then_sign_in_with_a_code_and_a_recovery_code(
        portal_stack: Any, mailbox: Mailbox) -> None:
    address = await invited_user(portal_stack, mailbox)
    user = Portal(portal_stack.base_url)
    try:
        await user.login(address, NEW_PASSWORD)
        status, setup = await user.post("/api/mfa/totp/setup")
        assert status == 200, setup
        assert setup["otpauth_uri"].startswith("otpauth://totp/") and "<svg" in setup["qr_svg"]
        totp = pyotp.TOTP(setup["secret"])
        status, verified = await user.post("/api/mfa/totp/verify", {"code": totp.now()})
        assert status == 200, verified
        codes = verified["recovery_codes"]
        assert len(codes) == 10
        await mailbox.wait_for(address, "mfa.two_factor_enabled")
        assert (await user.post("/api/auth/logout"))[0] == 204
    finally:
        await user.close()

    again = Portal(portal_stack.base_url)
    try:
        first = await again.login(address, NEW_PASSWORD)
        assert first["state"] == "second_factor_required"
        assert "totp" in first["second_factors"] and "recovery_code" in first["second_factors"]
        assert (await again.get("/api/profile"))[0] == 401  # pending sign-in is not signed in
        status, done = await again.post("/api/auth/login/recovery-code", {"code": codes[0].upper()})
        assert status == 200, done
        assert done["state"] == "signed_in" and done["recovery_codes_remaining"] == 9
        status, mfa = await again.get("/api/mfa")
        assert status == 200 and mfa["two_factor_enabled"] and mfa["recovery_codes"]["remaining"] == 9
        await mailbox.wait_for(address, "mfa.recovery_code_used")
    finally:
        await again.close()

    reused = Portal(portal_stack.base_url)
    try:
        await reused.login(address, NEW_PASSWORD)
        status, _ = await reused.post("/api/auth/login/recovery-code", {"code": codes[0]})
        assert status == 401  # spent
    finally:
        await reused.close()


async def test_password_reset_by_email_does_not_bypass_the_second_factor(
        portal_stack: Any, mailbox: Mailbox, portal: Portal) -> None:
    address = await invited_user(portal_stack, mailbox)
    status, _ = await portal.post("/api/auth/password-reset", {"email": address})
    assert status == 202
    status, _ = await portal.post("/api/auth/password-reset", {"email": unique_email("nobody")})
    assert status == 202  # the same answer for an unknown address
    [reset] = await mailbox.wait_for(address, "profile.password_reset_requested")
    token = link_token(reset, "reset-password")
    other = "yet another passphrase 99"
    status, body = await portal.post("/api/auth/password-reset/confirm",
                                     {"token": token, "new_password": other, "confirm_password": other})
    assert status == 204, body
    status, body = await portal.post("/api/auth/password-reset/confirm",
                                     {"token": token, "new_password": other, "confirm_password": other})
    assert status == 400 and body["type"].endswith("invalid-reset-token")
    await mailbox.wait_for(address, "profile.password_changed")
    assert (await portal.login(address, other))["state"] == "signed_in"


async def test_admin_impersonation_shows_the_notice_and_blocks_security_changes(
        portal_stack: Any, mailbox: Mailbox) -> None:
    address = await invited_user(portal_stack, mailbox)
    admin = Portal(portal_stack.base_url)
    try:
        await admin.login("admin@msp.example", DEMO_PASSWORD)
        status, users = await admin.get(f"/api/admin/users?q={address}")
        assert status == 200 and len(users) == 1
        status, body = await admin.post(f"/api/admin/users/{users[0]['id']}/impersonate",
                                        {"reason": "Ticket 4711: cannot find the phone field"})
        assert status == 200, body
        status, profile = await admin.get("/api/profile")
        assert profile["email"] == address
        assert profile["impersonator"]["email"] == "admin@msp.example"
        status, _ = await admin.post("/api/mfa/totp/setup")
        assert status == 403
        status, _ = await admin.post("/api/profile/password", {
            "current_password": NEW_PASSWORD, "new_password": "x" * 12, "confirm_password": "x" * 12})
        assert status == 403
        [notice] = await mailbox.wait_for(address, "profile.impersonation_started")
        assert "Ticket 4711" in notice.get_body(preferencelist=("plain",)).get_content()
        assert (await admin.post("/api/admin/impersonation/stop"))[0] == 200
        status, profile = await admin.get("/api/profile")
        assert profile["email"] == "admin@msp.example" and profile["impersonator"] is None
    finally:
        await admin.close()


async def test_one_id_follows_a_reset_from_the_request_to_the_email_in_the_logs(
        portal_stack: Any, mailbox: Mailbox, portal: Portal) -> None:
    address = await invited_user(portal_stack, mailbox)
    trace = f"trace-{unique_email()[5:13]}"
    status, _, _ = await portal.request("POST", "/api/auth/password-reset", {"email": address},
                                        headers={"X-Request-ID": trace})
    assert status == 202
    await mailbox.wait_for(address, "profile.password_reset_requested")
    logs = portal_stack.var / "log"
    for _ in range(50):  # the sent-line is written right after the SMTP server accepted the email
        sent = [json.loads(line) for line in (logs / "notifier.log").read_text().splitlines()
                if trace in line]
        if any(entry.get("event") == "email_sent" for entry in sent):
            break
        await asyncio.sleep(0.1)
    assert any(entry.get("event") == "email_sent" and entry["correlation_id"] == trace for entry in sent), sent
    assert trace in (logs / "profile.log").read_text()
    assert trace in portal_stack.nginx.access_log_path.read_text()
