"""Single sign-on against a real OpenID provider run by the test (tests/support/oidc_provider.py): the
admin's settings, email-first methods, the code flow, account linking, and every way a provider, a
browser or an attacker can make it fail (each one a redirect to the login page, never a 5xx)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from portal_shared import tokens
from profile_support import ADMIN_EMAIL, DEMO_EMAIL, PASSWORD, TOTP_CODE, Browser, ProfileHarness

from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, Login, OidcProvider

DOMAIN = "client.example"
FAILED = "/portal/login?error=sso"


@pytest.fixture
async def idp() -> AsyncIterator[OidcProvider]:
    provider = await OidcProvider().start()
    yield provider
    await provider.close()


async def _client_id(portal: ProfileHarness) -> str:
    return str(await portal.db.fetchval("SELECT client_id FROM profile.users WHERE id = $1",
                                        uuid.UUID(portal.demo_id)))


def _settings(idp: OidcProvider, **changes: object) -> dict[str, object]:
    return {"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "email_domains": [DOMAIN], "password_sign_in": "allowed", "trust_idp_mfa": False, **changes}


async def _configure(portal: ProfileHarness, idp: OidcProvider, **changes: object) -> tuple[Browser, str]:
    admin = await portal.signed_in(ADMIN_EMAIL)
    client_id = await _client_id(portal)
    status, body, _ = await admin.call("PUT", f"/api/admin/clients/{client_id}/sso", _settings(idp, **changes))
    assert status == 200, body
    return admin, client_id


async def _to_provider(browser: Browser, email: str = DEMO_EMAIL, path: str = "/api/auth/sso/start") -> str:
    """Start SSO in the browser and follow the provider's answer: the callback path (with its query)."""
    status, body, _ = await browser.call("POST", path, {"email": email} if "reauth" not in path else None)
    assert status == 200, body
    async with browser.http.get(body["redirect_url"], allow_redirects=False) as answer:
        assert answer.status == 302
        location = urlsplit(answer.headers["Location"])
    return f"{location.path}?{location.query}"


async def _callback(browser: Browser, path: str) -> str:
    async with browser.http.get(browser.base_url + path, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        return answer.headers["Location"]


async def _sso(portal: ProfileHarness, idp: OidcProvider, browser: Browser | None = None, *,
               sub: str = "idp-demo", email: str = DEMO_EMAIL, verified: object = True,
               **claims: object) -> tuple[Browser, str]:
    browser = browser or portal.browser()
    idp.next_login = Login(sub, {"email": email, "email_verified": verified, **claims})
    return browser, await _callback(browser, await _to_provider(browser, email))


async def test_admin_saves_a_provider_checked_by_discovery_and_never_shows_the_secret(
        portal: ProfileHarness, idp: OidcProvider) -> None:
    admin, client_id = await _configure(portal, idp, email_domains=["Client.Example", "client.example"])
    status, body, _ = await admin.call("PUT", f"/api/admin/clients/{client_id}/sso", _settings(idp))
    assert status == 200
    assert body == {"issuer": idp.issuer, "client_id": CLIENT_ID, "email_domains": [DOMAIN],
                    "password_sign_in": "allowed", "trust_idp_mfa": False}
    row = await portal.db.fetchrow("SELECT * FROM profile.sso_providers")
    assert CLIENT_SECRET.encode() not in bytes(row["secret_sealed"]), "the client secret is sealed at rest"
    # Write-only: an update without the secret keeps the stored one.
    without = {k: v for k, v in _settings(idp, trust_idp_mfa=True).items() if k != "client_secret"}
    status, body = (await admin.call("PUT", f"/api/admin/clients/{client_id}/sso", without))[:2]
    assert status == 200 and body["trust_idp_mfa"] is True
    await _sso(portal, idp)  # still signs in: the secret was kept
    status, found = await admin.post("/api/admin/sso/discovery", {"issuer": idp.issuer})
    assert status == 200 and found["token_endpoint"] == f"{idp.issuer}/token" and found["signing_algs"] == ["RS256"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"issuer": "ftp://idp.example"}, "issuer"),
    ({"issuer": "http://idp.example"}, "issuer"),  # http only on loopback
    ({"issuer": "http://127.0.0.1:9/nothing-listens"}, "issuer"),
    ({"issuer": 42}, "issuer"),
    ({"email_domains": []}, "email_domains"),
    ({"email_domains": ["not a domain"]}, "email_domains"),
    ({"email_domains": "client.example"}, "email_domains"),
    ({"client_id": ""}, "client_id"),
    ({"client_secret": None}, "client_secret"),
    ({"password_sign_in": "maybe"}, "password_sign_in"),
    ({"trust_idp_mfa": "yes"}, "trust_idp_mfa"),
])
async def test_bad_settings_are_field_errors(portal: ProfileHarness, idp: OidcProvider, changes: dict[str, object],
                                             field: str) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    status, body = (await admin.call("PUT", f"/api/admin/clients/{await _client_id(portal)}/sso",
                                     _settings(idp, **changes)))[:2]
    assert status == 422 and field in body["errors"], body


async def test_discovery_naming_another_issuer_is_refused(portal: ProfileHarness, idp: OidcProvider) -> None:
    idp.faults.discovery_issuer = "https://evil.example"
    admin = await portal.signed_in(ADMIN_EMAIL)
    status, body = (await admin.call("PUT", f"/api/admin/clients/{await _client_id(portal)}/sso", _settings(idp)))[:2]
    assert status == 422 and "issuer" in body["errors"]


async def test_only_admins_configure_and_a_domain_belongs_to_one_client(portal: ProfileHarness,
                                                                          idp: OidcProvider) -> None:
    user = await portal.signed_in(DEMO_EMAIL)
    client_id = await _client_id(portal)
    assert (await user.call("PUT", f"/api/admin/clients/{client_id}/sso", _settings(idp)))[0] == 403
    assert (await user.delete(f"/api/admin/clients/{client_id}/sso"))[0] == 403
    admin, _ = await _configure(portal, idp)
    status, other = await admin.post("/api/admin/clients", {"name": "Other Co"})
    assert status == 201
    status, body = (await admin.call("PUT", f"/api/admin/clients/{other['id']}/sso", _settings(idp)))[:2]
    assert status == 422 and "email_domains" in body["errors"]
    assert (await admin.call("PUT", "/api/admin/clients/not-a-uuid/sso", _settings(idp)))[0] == 404
    assert (await admin.call("PUT", f"/api/admin/clients/{uuid.uuid4()}/sso", _settings(idp)))[0] == 404
    assert (await admin.delete(f"/api/admin/clients/{client_id}/sso"))[0] == 204
    assert (await admin.delete(f"/api/admin/clients/{client_id}/sso"))[0] == 404


async def test_sign_in_methods_depend_on_the_domain_alone(portal: ProfileHarness, idp: OidcProvider) -> None:
    browser = portal.browser()
    assert await browser.post("/api/auth/sign-in-methods", {"email": DEMO_EMAIL}) == (200, {"methods": ["password"]})
    await _configure(portal, idp)
    for email in (DEMO_EMAIL, "nobody@client.example", "NOBODY@Client.Example"):
        assert await browser.post("/api/auth/sign-in-methods", {"email": email}) == \
            (200, {"methods": ["sso", "password"]})
    assert await browser.post("/api/auth/sign-in-methods", {"email": "a@elsewhere.example"}) == \
        (200, {"methods": ["password"]})
    status, body = await browser.post("/api/auth/sign-in-methods", {"email": "not an address"})
    assert status == 422 and "email" in body["errors"]
    status, body = await browser.post("/api/auth/sso/start", {"email": "a@elsewhere.example"})
    assert status == 422 and "email" in body["errors"]


async def test_first_sign_in_links_then_only_the_subject_matches(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    browser, location = await _sso(portal, idp)
    assert location == "/portal/profile"
    request = idp.authorize_requests[-1]
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert request["login_hint"] == DEMO_EMAIL and request["nonce"] and request["state"]
    assert request["redirect_uri"].endswith("/api/auth/sso/callback") and "openid" in request["scope"].split()
    status, session = await browser.get("/api/auth/session")
    assert status == 200 and session["state"] == "signed_in"
    assert session["user"]["sso"] == idp.issuer and session["user"]["has_password"] is True
    linked = [e["data"] for e in await portal.events("profile.sso_linked")]
    assert linked == [{"user_id": portal.demo_id, "issuer": idp.issuer}]
    assert "sso_linked" in await portal.audit_types(portal.demo_id)

    # Afterwards the email claim no longer matters, only (iss, sub): a changed address still finds the account,
    _, location = await _sso(portal, idp, email="renamed@client.example")
    assert location == "/portal/profile"
    # and another subject claiming the same verified address gets nothing (the account is linked already).
    _, location = await _sso(portal, idp, sub="someone-else")
    assert location == FAILED
    assert len(await portal.events("profile.sso_linked")) == 1


@pytest.mark.parametrize("claims", [
    {"verified": False}, {"verified": "true"}, {"verified": None}, {"verified": None, "xms_edov": False},
    {"email": "demo@elsewhere.example"},  # not one of the client's domains
    {"email": "nobody@client.example"},  # no such account
])
async def test_never_links_on_an_unverified_or_foreign_address(portal: ProfileHarness, idp: OidcProvider,
                                                               claims: dict[str, object]) -> None:
    await _configure(portal, idp, email_domains=[DOMAIN, "elsewhere.example"])
    _, location = await _sso(portal, idp, **claims)  # type: ignore[arg-type]
    assert location == FAILED
    assert await portal.db.fetchval("SELECT count(*) FROM profile.sso_identities") == 0


async def test_entra_ids_verified_domain_claim_counts_as_verified(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    _, location = await _sso(portal, idp, verified=None, xms_edov=True)
    assert location == "/portal/profile"


async def test_a_provider_cannot_sign_in_users_of_another_client_or_admins(portal: ProfileHarness,
                                                                           idp: OidcProvider) -> None:
    admin, _ = await _configure(portal, idp)
    status, other = await admin.post("/api/admin/clients", {"name": "Other Co"})
    status, _ = await admin.post("/api/admin/users", {"email": "victim@other.example", "name": "Victim",
                                                      "client_id": other["id"]})
    assert status == 201
    # The hostile provider of the demo client answers for a domain it was not given,
    await _configure(portal, idp, email_domains=[DOMAIN, "other.example", "msp.example"])
    _, location = await _sso(portal, idp, sub="x1", email="victim@other.example")
    assert location == FAILED, "a user of another client"
    _, location = await _sso(portal, idp, sub="x2", email=ADMIN_EMAIL)
    assert location == FAILED, "an MSP admin"


async def test_a_deactivated_account_cannot_sign_in_with_sso(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    await _sso(portal, idp)
    await portal.db.execute("UPDATE profile.users SET active = false WHERE id = $1", uuid.UUID(portal.demo_id))
    _, location = await _sso(portal, idp)
    assert location == FAILED


@pytest.mark.parametrize("fault", [
    {"id_token_claims": {"aud": "another-client"}},
    {"id_token_claims": {"aud": [CLIENT_ID, "another-client"]}},  # several audiences and no azp
    {"id_token_claims": {"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}},
    {"id_token_claims": {"iss": "https://evil.example"}},
    {"id_token_claims": {"exp": 1_000_000_000}},
    {"id_token_claims": {"iat": 4_000_000_000}},
    {"id_token_claims": {"nonce": "not-this-sign-ins"}},
    {"id_token_claims": {"nonce": None}},
    {"id_token_claims": {"sub": None}},
    {"sign_with": "stranger"},  # tampered: signed by a key the provider does not publish
    {"sign_with": "hs256-public"},
    {"sign_with": "none"},
    {"token_error": "invalid_grant"},
    {"authorize_error": "access_denied"},
    {"response_iss": "https://evil.example"},  # RFC 9207 mix-up
])
async def test_every_bad_token_or_answer_ends_on_the_login_page(portal: ProfileHarness, idp: OidcProvider,
                                                                fault: dict[str, object]) -> None:
    await _configure(portal, idp)
    for name, value in fault.items():
        setattr(idp.faults, name, value)
    browser, location = await _sso(portal, idp)
    assert location == FAILED
    assert (await browser.get("/api/auth/session"))[0] == 401


async def test_a_rotated_key_is_fetched_once_then_used(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    assert (await _sso(portal, idp))[1] == "/portal/profile"
    before = idp.jwks_requests
    idp.rotate_key()
    assert (await _sso(portal, idp))[1] == "/portal/profile"
    assert idp.jwks_requests == before + 1
    assert (await _sso(portal, idp))[1] == "/portal/profile"
    assert idp.jwks_requests == before + 1, "the new key set is cached"


async def test_state_is_single_use_and_bound_to_the_browser(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    browser = portal.browser()
    idp.next_login = Login("idp-demo", {"email": DEMO_EMAIL, "email_verified": True})
    callback = await _to_provider(browser)
    attacker = portal.browser()  # a callback URL replayed in another browser (login CSRF, stolen link)
    assert await _callback(attacker, callback) == FAILED
    # The attacker's try burnt that state: the victim's own callback fails too, and nothing signs in.
    assert await _callback(browser, callback) == FAILED
    callback = await _to_provider(browser)
    assert await _callback(browser, callback) == "/portal/profile"
    assert await _callback(browser, callback) == FAILED, "a replayed state (and code)"
    for junk in ("", "?state=", "?code=x", "?state=" + "x" * 5000 + "&code=y", "?error=access_denied"):
        assert await _callback(portal.browser(), "/api/auth/sso/callback" + junk) == FAILED


async def test_a_provider_removed_during_the_sign_in_ends_it(portal: ProfileHarness, idp: OidcProvider) -> None:
    """The callback reads the client's provider with the claimed state: once the admin removed it, the
    sign-in started before ends on the login page (and the state is spent), never a 5xx."""
    admin, client_id = await _configure(portal, idp)
    browser = portal.browser()
    idp.next_login = Login("idp-demo", {"email": DEMO_EMAIL, "email_verified": True})
    callback = await _to_provider(browser)
    assert (await admin.delete(f"/api/admin/clients/{client_id}/sso"))[0] == 204
    assert await _callback(browser, callback) == FAILED
    assert await portal.db.fetchval("SELECT count(*) FROM profile.sso_logins") == 0
    assert await portal.db.fetchval("SELECT count(*) FROM profile.sso_identities WHERE user_id = $1",
                                    uuid.UUID(portal.demo_id)) == 0


async def test_a_slow_provider_times_out_into_the_login_page(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    idp.faults.token_delay = float(portal.env.get("SSO_TIMEOUT_SECONDS", "5")) + 1
    _, location = await _sso(portal, idp)
    assert location == FAILED
    idp.faults.token_delay = 0
    assert (await portal.signed_in())  # password users are unaffected throughout


async def test_the_second_factor_still_applies_after_sso(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    await portal.enable_totp(portal.demo_id)
    browser, location = await _sso(portal, idp, amr=["pwd", "mfa"])
    assert location == "/portal/login?step=second-factor", "the provider's MFA is not trusted by default"
    status, session = await browser.get("/api/auth/session")
    assert session["state"] == "second_factor_required" and session["second_factors"] == ["totp", "recovery_code"]
    assert (await browser.get("/api/profile"))[0] == 401
    status, body = await browser.post("/api/auth/login/totp", {"code": TOTP_CODE})
    assert (status, body["state"]) == (200, "signed_in")
    current = next(s for s in (await browser.get("/api/auth/sessions"))[1] if s["current"])
    assert current["method"] == "sso+totp", "the session list shows how it signed in"

    await _configure(portal, idp, trust_idp_mfa=True)
    _, location = await _sso(portal, idp, amr=["pwd"])
    assert location == "/portal/login?step=second-factor", "trusted, but the token does not say MFA was done"
    browser, location = await _sso(portal, idp, amr=["pwd", "mfa"])
    assert location == "/portal/profile"


async def test_disabled_password_sign_in_answers_as_a_wrong_password(portal: ProfileHarness,
                                                                     idp: OidcProvider) -> None:
    browser = portal.browser()
    wrong = await browser.post("/api/auth/login", {"email": DEMO_EMAIL, "password": "not-the-password"})
    await _configure(portal, idp, password_sign_in="disabled")
    assert await browser.post("/api/auth/sign-in-methods", {"email": DEMO_EMAIL}) == (200, {"methods": ["sso"]})
    right = await browser.post("/api/auth/login", {"email": DEMO_EMAIL, "password": PASSWORD})
    assert right == wrong and right[0] == 401
    assert (await _sso(portal, idp))[1] == "/portal/profile"


async def test_a_reset_request_of_an_sso_only_account_mails_no_link(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp, password_sign_in="disabled")
    for _ in range(5):
        assert (await portal.browser().post("/api/auth/password-reset", {"email": DEMO_EMAIL}))[0] == 202
    for _ in range(200):  # the request is handled after the 202
        if len(await portal.events("profile.password_reset_requested")) >= 3:
            break
        await asyncio.sleep(0.05)
    notes = [e["data"] for e in await portal.events("profile.password_reset_requested")]
    assert len(notes) == 3, "as often as reset links would be (3 per 15 minutes)"
    assert all(n["sso_issuer"] == idp.issuer and n["reset_url"] == "" for n in notes)
    assert await portal.db.fetchval("SELECT count(*) FROM profile.password_tokens WHERE user_id = $1",
                                    uuid.UUID(portal.demo_id)) == 0


async def test_reauthentication_through_the_provider(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    browser, _ = await _sso(portal, idp)
    idp.next_login = Login("idp-demo", {"email": DEMO_EMAIL, "email_verified": True})
    location = await _callback(browser, await _to_provider(browser, path="/api/auth/reauth/sso/start"))
    assert location == "/portal/profile?reauth=sso"
    assert idp.authorize_requests[-1]["max_age"] == "0", "the provider must ask the person again"
    assert await portal.db.fetchval("SELECT reauth_at IS NOT NULL FROM profile.sessions WHERE user_id = $1 "
                                    "AND state = 'signed_in' ORDER BY created_at DESC LIMIT 1",
                                    uuid.UUID(portal.demo_id))
    # The provider proving someone else does not step up this session.
    idp.next_login = Login("someone-else", {"email": DEMO_EMAIL, "email_verified": True})
    location = await _callback(browser, await _to_provider(browser, path="/api/auth/reauth/sso/start"))
    assert location == FAILED
    # Started in one session, the callback cannot step up another.
    idp.next_login = Login("idp-demo", {"email": DEMO_EMAIL, "email_verified": True})
    started = await _to_provider(browser, path="/api/auth/reauth/sso/start")
    other, _ = await _sso(portal, idp)
    other.http.cookie_jar.update_cookies({"portal_sso": browser.cookie("portal_sso") or ""})
    assert await _callback(other, started) == FAILED


async def test_not_me_revokes_the_link_for_good(portal: ProfileHarness, idp: OidcProvider) -> None:
    await _configure(portal, idp)
    await _sso(portal, idp, sub="intruder")
    event = (await portal.events("profile.sso_linked"))[0]
    token = tokens.sign(portal.env["SERVICE_AUTH_KEY"], tokens.NOT_ME,
                        {"sub": portal.demo_id, "jti": event["id"], "evt": "profile.sso_linked",
                         "at": event["occurred_at"]}, ttl_seconds=600)
    assert (await portal.browser().post("/api/auth/not-me", {"token": token}))[0] == 204
    undone = [e["data"] for e in await portal.events("profile.change_undone")]
    assert undone and undone[0]["undone_type"] == "profile.sso_linked"
    assert (await _sso(portal, idp, sub="intruder"))[1] == FAILED, "that identity never links again"
    assert (await _sso(portal, idp, sub="the-real-demo"))[1] == "/portal/profile", "the user's own one may"


def test_the_authorization_url_keeps_the_endpoint_query() -> None:
    from profile_service.oidc import ProviderMetadata, authorization_url
    metadata = ProviderMetadata(issuer="https://idp.example", authorization_endpoint="https://idp.example/a?p=1",
                                token_endpoint="https://idp.example/t", jwks_uri="https://idp.example/k",
                                signing_algs=("RS256",), token_auth="client_secret_basic", iss_parameter=False)
    url = authorization_url(metadata, client_id="c", redirect_uri="https://portal/cb", state="s", nonce="n",
                            code_challenge="x", login_hint=None)
    query = parse_qs(urlsplit(url).query)
    assert query["p"] == ["1"] and query["response_type"] == ["code"] and "login_hint" not in query
