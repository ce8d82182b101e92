"""Single sign-on with a client's OpenID Connect provider: one more way to pass the first sign-in step.

Start: a random `state` (stored hashed, single use, 10 minutes) bound to this browser by an HttpOnly
cookie, a nonce, and a PKCE (S256) verifier sealed at rest. Callback: the state is claimed once, the
browser must hold its cookie, the code is exchanged and the ID token checked (oidc.py). Then the account:
SSO never creates one. The first sign-in links the token's (iss, sub) to the account of the provider's
client whose address equals a *verified* `email` in one of the client's domains; after that only
(iss, sub) finds it, never the email claim again (the "nOAuth" takeover: a mutable or unverified claim
choosing the account). The portal's second factor still applies, unless the client trusts the
provider's MFA and the token's `amr` says it was done.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from portal_shared.events import SsoLinked
from portal_shared.outbox import enqueue
from portal_shared.secretbox import DecryptionError

from profile_service import devices, second_factors, sessions
from profile_service.config import SERVICE
from profile_service.context import Context
from profile_service.errors import ValidationFailed
from profile_service.models import SECOND_FACTOR_REQUIRED, SIGNED_IN, Session, User
from profile_service.oidc import OidcError, authorization_url, nonce_hash
from profile_service.repository import audit
from profile_service.repository import sessions as sessions_repo
from profile_service.repository import sso as sso_repo
from profile_service.repository import users as users_repo
from profile_service.signin import HowSignedIn, SignInResult, completed
from profile_service.validation import FieldError, clean_email

log = structlog.get_logger("profile.sso")
LOGIN_LIFETIME = timedelta(minutes=10)
BROWSER_COOKIE = "portal_sso"
METHOD_PASSWORD, METHOD_SSO = "password", "sso"


class SsoFailed(Exception):
    """The callback failed; the reason is logged, the browser goes to /portal/login?error=sso."""


@dataclass(frozen=True, slots=True)
class Started:
    redirect_url: str
    browser_token: str  # the cookie value binding the state to this browser


@dataclass(frozen=True, slots=True)
class CallbackResult:
    sign_in: SignInResult | None = None  # a sign-in (complete or waiting for the second factor)
    reauth_raw_session_id: str | None = None  # or a re-authentication of the current session


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _email_field(value: Any) -> str:
    try:
        return clean_email(value)
    except FieldError as exc:
        raise ValidationFailed({"email": [str(exc)]}) from None


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


async def sign_in_methods(ctx: Context, email: Any) -> list[str]:
    """What an address's domain uses. The domain alone decides: every address in it, existing or not,
    gets the same answer, so the answer says nothing about accounts."""
    provider = await sso_repo.for_domain(ctx.pool, domain_of(_email_field(email)))
    if provider is None:
        return [METHOD_PASSWORD]
    return [METHOD_SSO, METHOD_PASSWORD] if provider.password_sign_in else [METHOD_SSO]


async def start(ctx: Context, *, email: Any = None, reauth: Session | None = None,
                browser_token: str | None = None) -> Started:
    """The provider's authorization URL for a sign-in (by address) or a re-authentication (the session's
    own client provider, `max_age=0` so the provider asks the person again)."""
    if reauth is not None:
        user = reauth.user
        provider = await sso_repo.for_client(ctx.pool, user.client.id) if user.client else None
        if provider is None:
            raise ValidationFailed({"email": ["Your account does not use single sign-on."]})
        login_hint: str = user.email
    else:
        login_hint = _email_field(email)
        provider = await sso_repo.for_domain(ctx.pool, domain_of(login_hint))
        if provider is None:
            raise ValidationFailed({"email": ["This email address does not use single sign-on."]})
    # One cookie per browser (kept when present), so sign-ins started in two tabs both complete.
    if not browser_token or len(browser_token) != 43 or not browser_token.isascii():
        browser_token = secrets.token_urlsafe(32)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state_hash = _hash(state)
    login = sso_repo.PendingLogin(
        client_id=provider.client_id, browser_hash=_hash(browser_token), nonce_hash=nonce_hash(nonce),
        verifier=ctx.box.encrypt(verifier.encode(), associated_data=state_hash),
        reauth_session=reauth.public_id if reauth else None, expires_at=datetime.now(UTC) + LOGIN_LIFETIME)
    await sso_repo.save_login(ctx.pool, state_hash, login)
    url = authorization_url(provider.metadata, client_id=provider.oidc_client_id,
                            redirect_uri=ctx.settings.sso_redirect_uri, state=state, nonce=nonce,
                            code_challenge=challenge, login_hint=login_hint, max_age=0 if reauth else None)
    return Started(url, browser_token)


async def callback(ctx: Context, query: dict[str, str], *, browser_token: str | None, current: Session | None,
                   user_agent: str, ip: str, device_cookie: str | None) -> CallbackResult:
    """Finish a sign-in or re-authentication the provider sent back; SsoFailed on anything amiss."""
    state = query.get("state", "")
    claimed = await sso_repo.claim_login(ctx.pool, _hash(state)) if 0 < len(state) <= 512 else None
    if claimed is None:
        raise SsoFailed("unknown, expired or replayed state")
    login, provider = claimed
    if not browser_token or not hmac.compare_digest(_hash(browser_token), login.browser_hash):
        raise SsoFailed("the state was started in another browser")
    if "error" in query:
        raise SsoFailed(f"the provider answered error={query['error'][:100]!r}")
    if provider is None:
        raise SsoFailed("the client's provider was removed during the sign-in")
    # RFC 9207: the authorization response names its issuer; a different one is a mix-up attack.
    if "iss" in query and query["iss"] != provider.issuer:
        raise SsoFailed("the authorization response names another issuer")
    if provider.metadata.iss_parameter and "iss" not in query:
        raise SsoFailed("the provider sends iss with its responses but this one has none")
    code = query.get("code", "")
    if not 0 < len(code) <= 2048:
        raise SsoFailed("the callback has no code")
    try:
        verifier = ctx.box.decrypt(login.verifier, associated_data=_hash(state)).decode()
        client_secret = ctx.box.decrypt(provider.secret, associated_data=provider.client_id.encode()).decode()
    except DecryptionError as exc:
        raise SsoFailed(f"stored secret unreadable: {exc}") from None
    try:
        id_token = await ctx.oidc.exchange_code(provider.metadata, client_id=provider.oidc_client_id,
                                                client_secret=client_secret, code=code, code_verifier=verifier,
                                                redirect_uri=ctx.settings.sso_redirect_uri)
        claims = await ctx.oidc.verify_id_token(provider.metadata, id_token, client_id=provider.oidc_client_id,
                                                expected_nonce_hash=login.nonce_hash)
    except OidcError as exc:
        raise SsoFailed(str(exc)) from None
    user = await _account(ctx, provider, claims, ip=ip)
    if login.reauth_session is not None:
        return CallbackResult(reauth_raw_session_id=await _reauthenticated(ctx, current, login.reauth_session,
                                                                          user, ip=ip))
    return CallbackResult(sign_in=await _sign_in(ctx, provider, user, claims, previous=current,
                                                 user_agent=user_agent, ip=ip, device_cookie=device_cookie))


async def _account(ctx: Context, provider: sso_repo.Provider, claims: dict[str, Any], *, ip: str) -> User:
    """The account the token proves: its linked identity, else (first sign-in) a safe link by address."""
    subject = claims["sub"]
    user = await sso_repo.linked_user(ctx.pool, provider.issuer, subject)
    if user is not None:
        if user.client is None or user.client.id != provider.client_id or not user.active:
            raise SsoFailed("the linked account is gone, inactive or no longer of this client")
        return user
    email = claims.get("email")
    if not _verified_email(claims) or not isinstance(email, str):
        raise SsoFailed("no link yet and the token has no verified email")
    if domain_of(email) not in provider.email_domains:
        raise SsoFailed("the token's email is not in the client's domains")
    user = await users_repo.get_by_email(ctx.pool, email)
    if user is None or user.client is None or user.client.id != provider.client_id or not user.active:
        raise SsoFailed("no active account of this client has the token's email")
    async with ctx.pool.acquire() as conn, conn.transaction():
        # The user's existing link at this issuer is another subject: the provider's account that had this
        # address is not this one (a renamed or recycled address). Only the first subject ever matches.
        if await sso_repo.user_has_identity(conn, user.id, provider.issuer):
            raise SsoFailed("the account is linked to another subject of this issuer")
        if not await sso_repo.link(conn, provider.issuer, subject, user.id):
            raise SsoFailed("the identity was revoked by its user, or linked meanwhile")
        linked = await enqueue(conn, SsoLinked(user_id=user.id, issuer=provider.issuer), source=SERVICE)
        await sso_repo.set_link_event(conn, provider.issuer, subject, linked.id)
        await audit.record(conn, user.id, "sso_linked", ip=ip, detail=provider.issuer)
    log.info("sso_linked", user_id=user.id, issuer=provider.issuer)
    return user


def _verified_email(claims: dict[str, Any]) -> bool:
    """`email_verified: true`; or, from Microsoft Entra ID (which sends no email_verified), `xms_edov: true`:
    the address's domain is verified by the tenant, Microsoft's answer to the nOAuth takeover."""
    return claims.get("email_verified") is True or claims.get("xms_edov") is True


def _provider_did_mfa(provider: sso_repo.Provider, claims: dict[str, Any]) -> bool:
    amr = claims.get("amr")
    return provider.trust_idp_mfa and isinstance(amr, list) and "mfa" in amr


async def _sign_in(ctx: Context, provider: sso_repo.Provider, user: User, claims: dict[str, Any], *,
                   previous: Session | None, user_agent: str, ip: str, device_cookie: str | None) -> SignInResult:
    factors = await second_factors.offered(ctx, user)
    needs_second = factors is not None and not _provider_did_mfa(provider, claims)
    device = await devices.find(ctx.pool, device_cookie, user.id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if previous is not None:
            await sessions_repo.delete(conn, previous.id_hash)
        if needs_second:  # the provider's step counts as the first factor, like a password
            raw, _ = await sessions.start(conn, user_id=user.id, state=SECOND_FACTOR_REQUIRED,
                                          user_agent=user_agent, ip=ip, method=METHOD_SSO,
                                          audit=(audit.SSO_ACCEPTED, f"{provider.issuer}; second factor required"))
            return SignInResult(raw, SECOND_FACTOR_REQUIRED, second_factors=factors)
        how = "single sign-on" + (" with the provider's MFA" if factors is not None else "")
        raw, session_id = await sessions.start(conn, user_id=user.id, state=SIGNED_IN, user_agent=user_agent, ip=ip,
                                               method=METHOD_SSO, audit=("signed_in", f"{how} ({provider.issuer})"))
        cookie, known = await completed(conn, user, device, device_cookie, session_id=session_id,
                                        how=HowSignedIn(METHOD_SSO, ip, user_agent))
    return SignInResult(raw, SIGNED_IN, device_cookie=cookie, new_device=not known)


async def _reauthenticated(ctx: Context, current: Session | None, public_id: str, user: User, *, ip: str) -> str:
    """The provider proved the person again: step up the session that asked (only that one, only its user)."""
    if current is None or current.public_id != public_id or current.state != SIGNED_IN:
        raise SsoFailed("the re-authentication came back to another session")
    if current.user.id != user.id or current.impersonated is not None:
        raise SsoFailed("the provider proved another account than the session's")
    async with ctx.pool.acquire() as conn, conn.transaction():
        raw = await sessions.step_up(conn, current)
        await audit.record(conn, user.id, "reauthenticated", ip=ip, detail="single sign-on")
    return raw
