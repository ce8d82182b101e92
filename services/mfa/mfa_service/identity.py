"""Who is calling: the gateway's X-Portal-Identity on /api/mfa*, a service token on /internal/*.

See docs/internal-api.md: profile answers nginx's auth_request with a signed identity token (purpose
`identity`, 60 s); profile calls /internal/* with a service token whose audience is `mfa`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from portal_shared import tokens
from portal_shared.problems import Problem
from portal_shared.web import Handler

from mfa_service.errors import ReauthRequired
from mfa_service.keys import IDENTITY, SETTINGS

REAUTH_WINDOW_SECONDS = 600  # the contract's "re-authenticated in the last 10 minutes"
MAX_USER_ID_BYTES = 64  # also the WebAuthn user handle limit (ceremony.MAX_USER_HANDLE_BYTES)
PUBLIC_PREFIX = "/api/mfa"
INTERNAL_PREFIX = "/internal/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def valid_user_id(value: object) -> bool:
    """A user id we can store and use: a non-empty string of at most 64 UTF-8 bytes, no control characters
    (Postgres text refuses NUL) and no lone surrogates (not encodable)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return False
    return size <= MAX_USER_ID_BYTES and value.isprintable()


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    session_id: str | None
    email: str
    name: str
    role: str
    impersonator: dict[str, Any] | None
    auth_at: int
    reauth_at: int | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Identity:
        try:
            user_id = payload["sub"]
            if not valid_user_id(user_id):
                raise ValueError("sub")
            imp = payload.get("imp")
            reauth = payload.get("reauth_at")
            return cls(
                user_id=user_id,
                session_id=payload.get("sid"),
                email=str(payload.get("email") or ""),
                name=str(payload.get("name") or ""),
                role=str(payload.get("role") or ""),
                impersonator=imp if isinstance(imp, dict) else None,
                auth_at=int(payload.get("auth_at") or 0),
                reauth_at=int(reauth) if reauth is not None else None,
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise tokens.InvalidToken("identity payload malformed") from None

    def recently_authenticated(self, now: float | None = None) -> bool:
        """max(auth_at, reauth_at) >= now - 600 (docs/internal-api.md)."""
        latest = max(self.auth_at, self.reauth_at or 0)
        return latest >= (time.time() if now is None else now) - REAUTH_WINDOW_SECONDS


def require_recent_authentication(identity: Identity, action: str) -> None:
    """403 reauth-required unless the session signed in or re-authenticated in the last 10 minutes.

    Adding a factor needs it as much as removing one: otherwise whoever holds a stolen (or unattended)
    session could enrol their own authenticator and keep the account after the password is changed.
    """
    if not identity.recently_authenticated():
        raise ReauthRequired(f"Confirm it's you (sign in again or re-authenticate) to {action}.")


def _identity(key: str, request: web.Request) -> Identity:
    token = request.headers.get(tokens.IDENTITY_HEADER)
    if not token:
        raise Problem(401, "Sign in to manage two-factor authentication.", kind="not-signed-in")
    try:
        return Identity.from_payload(tokens.verify(key, tokens.IDENTITY, token))
    except tokens.InvalidToken:
        raise Problem(401, "Sign in to manage two-factor authentication.", kind="not-signed-in") from None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without a valid identity (public) or service token (internal); 403 for changes while impersonating."""
    key = request.app[SETTINGS].service_auth_key
    path = request.path
    if path == PUBLIC_PREFIX or path.startswith(PUBLIC_PREFIX + "/"):
        identity = _identity(key, request)
        if identity.impersonator is not None and request.method not in _SAFE_METHODS:
            raise Problem(403, "Two-factor settings cannot be changed while an administrator views this account.",
                          kind="impersonation-forbidden")
        request[IDENTITY] = identity
    elif path.startswith(INTERNAL_PREFIX):
        try:
            tokens.verify_service_call(key, request.headers.get(tokens.SERVICE_AUTH_HEADER), audience="mfa")
        except tokens.InvalidToken:
            raise Problem(401, "A valid service token is required.", kind="service-auth-required") from None
    return await handler(request)


def identity_of(request: web.Request) -> Identity:
    return request[IDENTITY]
