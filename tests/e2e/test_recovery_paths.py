"""After a reset or "This wasn't me" the attacker holds nothing; admin powers are bounded (issue: security).

The whole stack through nginx: a stolen (fresh) session plants factors, an admin moves an address, an
admin views an account — and the owner's "This wasn't me" link undoes each, ends every session and
mails a reset link. Admins cannot take over other admins, and their account-takeover actions need a
recent authentication.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import asyncpg
import pyotp
import pytest

from tests.e2e.test_flows import NEW_PASSWORD, invited_user
from tests.support.portal_client import Mailbox, Portal, link_token, unique_email
from tests.support.soft_authenticator import SoftAuthenticator
from tests.support.stack import DEMO_PASSWORD

pytestmark = pytest.mark.slow
ATTACKER_PASSWORD = "the attacker's own passphrase 1"


@pytest.fixture
def mailbox(portal_stack: Any) -> Mailbox:
    return Mailbox(portal_stack.mail_dir)


@pytest.fixture
async def db(portal_stack: Any) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(portal_stack.postgres.admin_dsn.rsplit("/", 1)[0] + "/portal")
    yield conn
    await conn.close()


@pytest.fixture
async def portals(portal_stack: Any) -> AsyncIterator[Any]:
    made: list[Portal] = []

    def make() -> Portal:
        made.append(Portal(portal_stack.base_url))
        return made[-1]

    yield make
    for portal in made:
        await portal.close()


def session_cookie(portal: Portal) -> str:
    return next(c.value for c in portal.session.cookie_jar if c.key == "portal_session")


async def age_session(db: asyncpg.Connection, portal: Portal) -> None:
    """Make the portal's session a sign-in of 11 minutes ago, never re-authenticated."""
    digest = hashlib.sha256(session_cookie(portal).encode()).digest()
    status = await db.execute("UPDATE profile.sessions SET auth_at = now() - interval '11 minutes', reauth_at = NULL "
                              "WHERE id_hash = $1", digest)
    assert status == "UPDATE 1"


async def user_id(db: asyncpg.Connection, address: str) -> str:
    return str(await db.fetchval("SELECT id FROM profile.users WHERE lower(email) = lower($1)", address))


async def outbox_count(db: asyncpg.Connection, event_type: str, user: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM profile.outbox WHERE type = $1 "
                                 "AND body->'data'->>'user_id' = $2", event_type, user))


async def newest_link(mailbox: Mailbox, address: str, known: set[str]) -> str:
    """The reset link of the reset email to `address` whose link is not among `known`."""
    for _ in range(200):
        links = {link_token(m, "reset-password") for m in mailbox.all()
                 if address in str(m["To"]) and m["X-Portal-Event"] == "profile.password_reset_requested"}
        if links - known:
            [new] = links - known
            return new
        await asyncio.sleep(0.1)
    raise AssertionError(f"no new reset email to {address}")


async def heard_by_profile(db: asyncpg.Connection, message: Any) -> None:
    """Wait until profile's consumer has handled the event the email reports (its Message-ID names it)."""
    event_id = str(message["Message-ID"]).strip("<>").split("@")[0].split(".")[0]
    for _ in range(200):
        if await db.fetchval("SELECT 1 FROM profile.inbox WHERE message_id = $1", event_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"profile did not handle event {event_id}")


def not_me_token(message: Any) -> str:
    return unquote(link_token(message, "not-me"))


async def not_me(portal: Portal, message: Any) -> tuple[int, Any, Any]:
    return await portal.request("POST", "/api/auth/not-me", {"token": not_me_token(message)})


async def register_passkey(portal: Portal, authenticator: SoftAuthenticator, name: str = "Planted") -> tuple[int, Any]:
    status, options = await portal.post("/api/mfa/webauthn/register/options")
    assert status == 200, options
    return await portal.post("/api/mfa/webauthn/register",
                             {"credential": authenticator.create(options), "name": name})


async def passkey_sign_in(portal: Portal, authenticator: SoftAuthenticator) -> int:
    status, options = await portal.post("/api/auth/login/passkey/options")
    assert status == 200, options
    status, _ = await portal.post("/api/auth/login/passkey", {"credential": authenticator.get(options)})
    return status


async def test_not_me_removes_a_planted_passkey_and_app_and_says_two_factor_is_off(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    address = await invited_user(portal_stack, mailbox)
    owner_id = await user_id(db, address)
    attacker = portals()
    await attacker.login(address, NEW_PASSWORD)  # a stolen session: freshly signed in

    authenticator = SoftAuthenticator(origin=portal_stack.base_url)
    status, body = await register_passkey(attacker, authenticator)
    assert status == 201 and body["key"]["passkey"] is True, body
    [enabled] = await mailbox.wait_for(address, "mfa.two_factor_enabled")
    status, setup = await attacker.post("/api/mfa/totp/setup")
    assert status == 200, setup
    status, _ = await attacker.post("/api/mfa/totp/verify", {"code": pyotp.TOTP(setup["secret"]).now()})
    assert status == 200
    [app_added] = await mailbox.wait_for(address, "mfa.totp_enabled")
    await heard_by_profile(db, enabled)
    await heard_by_profile(db, app_added)
    offered = (await portals().login(address, NEW_PASSWORD))["second_factors"]
    assert "webauthn" in offered and "totp" in offered  # kept by profile for the account's next sign-ins

    owner = portals()
    status, _, response = await not_me(owner, enabled)  # the key that turned two-factor on
    assert status == 204 and "X-Portal-Two-Factor" not in response.headers  # the app is still there
    assert (await attacker.get("/api/profile"))[0] == 401, "every session ended"
    assert await passkey_sign_in(portals(), authenticator) == 401, "the planted passkey is gone"
    offered = (await portals().login(address, NEW_PASSWORD))["second_factors"]
    assert "webauthn" not in offered and "totp" in offered, "the undo voided the kept list (mfa sends no event)"

    status, _, response = await not_me(owner, app_added)
    assert status == 204 and response.headers.get("X-Portal-Two-Factor") == "off"
    fresh = portals()
    assert (await fresh.login(address, NEW_PASSWORD))["state"] == "signed_in", "no factor only the attacker has"
    status, mfa = await fresh.get("/api/mfa")
    assert mfa["two_factor_enabled"] is False and mfa["security_keys"] == [] and mfa["recovery_codes"] is None

    undone = await mailbox.wait_for(address, "profile.change_undone", count=2)
    assert any("off" in m.get_body(preferencelist=("plain",)).get_content() for m in undone)
    await mailbox.wait_for(address, "profile.password_reset_requested", count=2)
    before = (await outbox_count(db, "profile.password_reset_requested", owner_id),
              await outbox_count(db, "profile.change_undone", owner_id))
    status, _, _ = await not_me(owner, app_added)
    assert status == 204, "a second click answers as the first"
    assert (await outbox_count(db, "profile.password_reset_requested", owner_id),
            await outbox_count(db, "profile.change_undone", owner_id)) == before, "and does nothing more"


async def test_not_me_voids_regenerated_recovery_codes(
        portal_stack: Any, mailbox: Mailbox, portals: Any) -> None:
    address = await invited_user(portal_stack, mailbox)
    user = portals()
    await user.login(address, NEW_PASSWORD)
    status, setup = await user.post("/api/mfa/totp/setup")
    totp = pyotp.TOTP(setup["secret"])
    status, _ = await user.post("/api/mfa/totp/verify", {"code": totp.now()})
    assert status == 200
    status, body = await user.post("/api/mfa/recovery-codes/regenerate", {"password": NEW_PASSWORD})
    assert status == 200, body
    codes = body["recovery_codes"]
    [regenerated] = await mailbox.wait_for(address, "mfa.recovery_codes_regenerated")

    status, _, response = await not_me(portals(), regenerated)
    assert status == 204 and "X-Portal-Two-Factor" not in response.headers
    again = portals()
    assert (await again.login(address, NEW_PASSWORD))["state"] == "second_factor_required"
    status, _ = await again.post("/api/auth/login/recovery-code", {"code": codes[0]})
    assert status == 401, "the regenerated codes are void"
    await mailbox.wait_for(address, "profile.change_undone")


async def test_an_address_change_tells_both_addresses_and_its_undo_leaves_the_mover_nothing(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    address = await invited_user(portal_stack, mailbox)
    owner_id = await user_id(db, address)
    hijacked = unique_email("hijack")
    admin = portals()
    await admin.login("admin@msp.example", DEMO_PASSWORD)
    status, body = await admin.patch(f"/api/admin/users/{owner_id}", {"email": hijacked})
    assert status == 200 and body["email"] == hijacked, body
    [to_old] = await mailbox.wait_for(address, "profile.email_changed")
    [to_new] = await mailbox.wait_for(hijacked, "profile.email_changed")
    assert "/portal/not-me?token=" in to_old.get_body(preferencelist=("plain",)).get_content()
    assert "/portal/not-me?token=" not in to_new.get_body(preferencelist=("plain",)).get_content()

    # Whoever holds the new address resets the password there and signs in.
    mover = portals()
    assert (await mover.post("/api/auth/password-reset", {"email": hijacked}))[0] == 202
    [reset] = await mailbox.wait_for(hijacked, "profile.password_reset_requested")
    status, _ = await mover.post("/api/auth/password-reset/confirm", {
        "token": link_token(reset, "reset-password"), "new_password": ATTACKER_PASSWORD,
        "confirm_password": ATTACKER_PASSWORD})
    assert status == 204
    assert (await mover.login(hijacked, ATTACKER_PASSWORD))["state"] == "signed_in"

    status, _, _ = await not_me(portals(), to_old)
    assert status == 204
    assert await db.fetchval("SELECT email FROM profile.users WHERE id = $1", owner_id) == address
    assert (await mover.get("/api/profile"))[0] == 401
    for login in (hijacked, address):
        status, _ = await portals().post("/api/auth/login", {"email": login, "password": ATTACKER_PASSWORD})
        assert status == 401, "the password set through the moved address is void"
    [reset_to_owner] = await mailbox.wait_for(address, "profile.password_reset_requested")
    status, _ = await portals().post("/api/auth/password-reset/confirm", {
        "token": link_token(reset_to_owner, "reset-password"), "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD})
    assert status == 204
    assert (await portals().login(address, NEW_PASSWORD))["state"] == "signed_in"
    await mailbox.wait_for(address, "profile.change_undone")


async def test_not_me_ends_the_admins_viewing_session(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    address = await invited_user(portal_stack, mailbox)
    owner_id = await user_id(db, address)
    admin = portals()
    await admin.login("admin@msp.example", DEMO_PASSWORD)
    before = session_cookie(admin)
    status, body = await admin.post(f"/api/admin/users/{owner_id}/impersonate", {"reason": "Ticket 99: phone"})
    assert status == 200, body
    assert session_cookie(admin) != before, "the session id rotates when it starts viewing"
    [notice] = await mailbox.wait_for(address, "profile.impersonation_started")
    assert (await not_me(portals(), notice))[0] == 204
    assert (await admin.get("/api/profile"))[0] == 401, "the impersonating session ended"
    [undone] = await mailbox.wait_for(address, "profile.change_undone")
    assert "impersonation_started" not in str(undone["Subject"])


async def test_admins_cannot_take_over_another_admin(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    from profile_service.bootstrap import create_admin

    second = unique_email("admin2").replace("client.example", "msp.example")
    dsn = portal_stack.postgres.admin_dsn.rsplit("/", 1)[0] + "/portal"
    link = await create_admin(dsn, email=second, name="Second Admin", base_url=portal_stack.base_url)
    status, _ = await portals().post("/api/auth/invitation/accept", {
        "token": unquote(link.split("token=", 1)[1]), "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert status == 204
    admin2 = portals()
    await admin2.login(second, NEW_PASSWORD)
    first_id = await user_id(db, "admin@msp.example")
    status, body = await admin2.patch(f"/api/admin/users/{first_id}", {"email": unique_email("mine")})
    assert status == 403, body
    assert (await admin2.post(f"/api/admin/users/{first_id}/mfa/reset"))[0] == 403
    assert (await admin2.post(f"/api/admin/users/{first_id}/impersonate", {"reason": "take over"}))[0] == 403
    assert await db.fetchval("SELECT email FROM profile.users WHERE id = $1", first_id) == "admin@msp.example"


async def test_takeover_actions_need_the_admins_recent_authentication(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    address = await invited_user(portal_stack, mailbox)
    target = await user_id(db, address)
    admin = portals()
    await admin.login("admin@msp.example", DEMO_PASSWORD)
    await age_session(db, admin)
    for method, path, body in (("PATCH", f"/api/admin/users/{target}", {"email": unique_email("moved")}),
                               ("POST", f"/api/admin/users/{target}/mfa/reset", None),
                               ("POST", f"/api/admin/users/{target}/impersonate", {"reason": "Ticket 1: help"})):
        status, problem, _ = await admin.request(method, path, body)
        assert status == 403 and problem["type"].endswith("reauth-required"), (path, problem)
    assert await db.fetchval("SELECT email FROM profile.users WHERE id = $1", target) == address
    status, body, _ = await admin.request("PATCH", f"/api/admin/users/{target}", {"title": "CEO"})
    assert status == 200, "other fields need no re-authentication"

    assert (await admin.post("/api/auth/reauth", {"password": DEMO_PASSWORD}))[0] == 204
    status, body = await admin.post(f"/api/admin/users/{target}/impersonate", {"reason": "Ticket 1: help"})
    assert status == 200, body
    assert (await admin.post("/api/admin/impersonation/stop"))[0] == 200


async def test_an_admins_two_factor_reset_ends_every_session_of_the_account(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    address = await invited_user(portal_stack, mailbox)
    target = await user_id(db, address)
    user = portals()
    await user.login(address, NEW_PASSWORD)
    _, setup = await user.post("/api/mfa/totp/setup")
    assert (await user.post("/api/mfa/totp/verify", {"code": pyotp.TOTP(setup["secret"]).now()}))[0] == 200
    admin = portals()
    await admin.login("admin@msp.example", DEMO_PASSWORD)
    assert (await admin.post(f"/api/admin/users/{target}/mfa/reset"))[0] == 204
    assert (await user.get("/api/profile"))[0] == 401
    await mailbox.wait_for(address, "mfa.reset_by_admin")


async def test_links_are_void_after_a_password_change_an_address_change_and_a_completed_reset(
        portal_stack: Any, mailbox: Mailbox, db: asyncpg.Connection, portals: Any) -> None:
    # An invitation link is refused once the account has a password (even before it expires).
    admin = portals()
    await admin.login("admin@msp.example", DEMO_PASSWORD)
    status, client = await admin.post("/api/admin/clients", {"name": f"Client {unique_email()[:13]}"})
    address = unique_email()
    status, created = await admin.post("/api/admin/users", {"email": address, "name": "Val Void",
                                                            "client_id": client["id"]})
    assert status == 201, created
    [invite] = await mailbox.wait_for(address, "profile.user_invited")
    anyone = portals()
    assert (await anyone.post("/api/auth/password-reset", {"email": address}))[0] == 202
    [reset] = await mailbox.wait_for(address, "profile.password_reset_requested")
    status, _ = await anyone.post("/api/auth/password-reset/confirm", {
        "token": link_token(reset, "reset-password"), "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert status == 204
    status, problem = await anyone.post("/api/auth/invitation/accept", {
        "token": link_token(invite, "accept-invite"), "new_password": ATTACKER_PASSWORD,
        "confirm_password": ATTACKER_PASSWORD})
    assert status == 400 and problem["type"].endswith("invalid-reset-token")
    assert (await portals().login(address, NEW_PASSWORD))["state"] == "signed_in", "the password stands"

    # A password change voids a reset link mailed before it, and rotates the session id.
    assert (await anyone.post("/api/auth/password-reset", {"email": address}))[0] == 202
    first_links = {link_token(reset, "reset-password")}
    pending = await newest_link(mailbox, address, first_links)
    user = portals()
    await user.login(address, NEW_PASSWORD)
    before = session_cookie(user)
    status, _ = await user.post("/api/profile/password", {
        "current_password": NEW_PASSWORD, "new_password": "a third long passphrase 3",
        "confirm_password": "a third long passphrase 3"})
    assert status == 204
    assert session_cookie(user) != before and (await user.get("/api/profile"))[0] == 200
    stale = Portal(portal_stack.base_url)
    try:
        stale.session.cookie_jar.update_cookies({"portal_session": before})
        assert (await stale.get("/api/profile"))[0] == 401, "the old session id is dead"
    finally:
        await stale.close()
    status, problem = await anyone.post("/api/auth/password-reset/confirm", {
        "token": pending, "new_password": ATTACKER_PASSWORD,
        "confirm_password": ATTACKER_PASSWORD})
    assert status == 400 and problem["type"].endswith("invalid-reset-token")

    # An address change voids a reset link mailed to the old address (the third request of the 15 minutes).
    assert (await anyone.post("/api/auth/password-reset", {"email": address}))[0] == 202
    third = await newest_link(mailbox, address, {*first_links, pending})
    status, _ = await admin.patch(f"/api/admin/users/{created['id']}", {"email": unique_email("moved")})
    assert status == 200
    status, problem = await anyone.post("/api/auth/password-reset/confirm", {
        "token": third, "new_password": ATTACKER_PASSWORD,
        "confirm_password": ATTACKER_PASSWORD})
    assert status == 400 and problem["type"].endswith("invalid-reset-token")


async def test_operators_manage_admins_with_portal_admin(
        portal_stack: Any, mailbox: Mailbox, portals: Any) -> None:
    from tests.e2e.test_admin_cli_stack import create_admin as cli_create_admin
    from tests.e2e.test_admin_cli_stack import portal_admin

    cwd = portal_stack.var.parent
    address = unique_email("ops-admin").replace("client.example", "msp.example")
    link = cli_create_admin(address, "Ops Admin", cwd=cwd, base_url=portal_stack.base_url)
    status, _ = await portals().post("/api/auth/invitation/accept", {
        "token": unquote(link.split("token=", 1)[1]), "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert status == 204
    admin = portals()
    await admin.login(address, NEW_PASSWORD)
    status, setup = await admin.post("/api/mfa/totp/setup")
    assert (await admin.post("/api/mfa/totp/verify", {"code": pyotp.TOTP(setup["secret"]).now()}))[0] == 200
    listed = portal_admin("list-admins", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    assert any(address in line and "two-factor on" in line for line in listed.stdout.splitlines()), listed.stdout

    reset = portal_admin("reset-admin-two-factor", "--email", address, cwd=cwd)
    assert reset.returncode == 0, reset.stderr
    assert (await admin.get("/api/profile"))[0] == 401, "every session of the account ended"
    await mailbox.wait_for(address, "mfa.reset_by_admin")
    assert (await portals().login(address, NEW_PASSWORD))["state"] == "signed_in", "no factor left"

    moved = unique_email("ops-moved").replace("client.example", "msp.example")
    change = portal_admin("change-admin-email", "--email", address, "--new-email", moved, cwd=cwd)
    assert change.returncode == 0, change.stderr
    await mailbox.wait_for(address, "profile.email_changed")
    await mailbox.wait_for(moved, "profile.email_changed")
    assert (await portals().login(moved, NEW_PASSWORD))["state"] == "signed_in"
    client_user = portal_admin("change-admin-email", "--email", "demo@client.example", "--new-email", moved, cwd=cwd)
    assert client_user.returncode == 1 and "no MSP admin" in client_user.stderr
