"""Single sign-on through nginx against a third-party OpenID provider (oidc-provider-mock, built on
Authlib's server): the admin's settings, the email-first methods, the round trip, the link email, the
session — the interop check beside the integration tests' own provider (tests/support/oidc_provider.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import oidc_provider_mock
import pytest

from tests.e2e.test_flows import NEW_PASSWORD
from tests.support.portal_client import Mailbox, Portal, link_token
from tests.support.stack import DEMO_PASSWORD

# oidc-provider-mock runs in this process and calls an Authlib hook Authlib now deprecates; the test
# suite turns warnings into errors, which would make the provider answer 500. Only that warning is let by.
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:get_jwt_config.*is deprecated:DeprecationWarning")]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


async def _invited(portal_stack: Any, mailbox: Mailbox, issuer: str) -> tuple[str, str]:
    """A client whose new domain signs in with the provider, and an invited user of it who set a password."""
    tag = uuid.uuid4().hex[:8]
    domain, address = f"mock-{tag}.example", f"erin@mock-{tag}.example"
    admin = Portal(portal_stack.base_url)
    try:
        await admin.login("admin@msp.example", DEMO_PASSWORD)
        status, client = await admin.post("/api/admin/clients", {"name": f"Mock SSO {tag}"})
        assert status == 201, client
        status, body, _ = await admin.request("PUT", f"/api/admin/clients/{client['id']}/sso", {
            "issuer": issuer, "client_id": "portal", "client_secret": "any-secret", "email_domains": [domain],
            "password_sign_in": "allowed", "trust_idp_mfa": False})
        assert status == 200, body
        status, _ = await admin.post("/api/admin/users", {"email": address, "name": "Erin", "client_id": client["id"]})
        assert status == 201
    finally:
        await admin.close()
    [invite] = await mailbox.wait_for(address, "profile.user_invited")
    anonymous = Portal(portal_stack.base_url)
    try:
        assert (await anonymous.post("/api/auth/invitation/accept", {
            "token": link_token(invite, "accept-invite"), "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD}))[0] == 204
    finally:
        await anonymous.close()
    return domain, address


async def test_sign_in_through_a_third_party_provider(portal_stack: Any, provider: str) -> None:
    mailbox = Mailbox(portal_stack.mail_dir)
    domain, address = await _invited(portal_stack, mailbox, provider)
    # The provider learns the user's verified address.
    async with aiohttp.ClientSession() as http, http.put(
            f"{provider}/users/{quote('erin-sub')}",
            json={"email": address, "email_verified": True, "name": "Erin"}) as answer:
        assert answer.status == 204
    browser = Portal(portal_stack.base_url)
    try:
        assert await browser.post("/api/auth/sign-in-methods", {"email": f"anyone@{domain}"}) == \
            (200, {"methods": ["sso", "password"]})
        status, started = await browser.post("/api/auth/sso/start", {"email": address})
        assert status == 200, started
        authorize = started["redirect_url"]
        assert authorize.startswith(f"{provider}/") and "code_challenge_method=S256" in authorize
        # The provider's login form, answered as the person would; it sends the browser back with a code.
        async with browser.session.post(authorize, data={"sub": "erin-sub"}, allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            back = urlsplit(answer.headers["Location"])
        assert f"{back.scheme}://{back.netloc}" == portal_stack.base_url and back.path == "/api/auth/sso/callback"
        async with browser.session.get(f"{portal_stack.base_url}{back.path}?{back.query}",
                                       allow_redirects=False) as answer:
            assert answer.status == 302 and answer.headers["Location"] == "/portal/profile"
        status, session = await browser.get("/api/auth/session")
        assert status == 200 and session["user"]["email"] == address and session["user"]["sso"] == provider
        await mailbox.wait_for(address, "profile.sso_linked")
        # The same callback again (a replay) signs nobody in.
        replay = Portal(portal_stack.base_url)
        try:
            async with replay.session.get(f"{portal_stack.base_url}{back.path}?{back.query}",
                                          allow_redirects=False) as answer:
                assert answer.headers["Location"] == "/portal/login?error=sso"
        finally:
            await replay.close()
    finally:
        await browser.close()
