"""The authentication middleware: the gateway's X-Portal-Identity on /api/mfa*, a service token on /internal/*.

See docs/internal-api.md: profile answers nginx's auth_request with a signed identity token (purpose
`identity`, 60 s); profile calls /internal/* with a service token whose audience is `mfa`. What an
identity is lives in principal.py (a leaf), so the services never import this module or the app keys.
"""

from __future__ import annotations

from aiohttp import web
from portal_shared import tokens
from portal_shared.web import Handler

from mfa_service.errors import ImpersonationForbidden, NotSignedIn, ServiceAuthRequired
from mfa_service.keys import CONTEXT, IDENTITY
from mfa_service.principal import Identity

PUBLIC_PREFIX = "/api/mfa"
INTERNAL_PREFIX = "/internal/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _identity(key: str, request: web.Request) -> Identity:
    token = request.headers.get(tokens.IDENTITY_HEADER)
    if not token:
        raise NotSignedIn()
    try:
        return Identity.from_payload(tokens.verify(key, tokens.IDENTITY, token))
    except tokens.InvalidToken:
        raise NotSignedIn() from None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without a valid identity (public) or service token (internal); 403 for changes while impersonating."""
    path = request.path
    if path == PUBLIC_PREFIX or path.startswith(PUBLIC_PREFIX + "/"):
        identity = _identity(request.app[CONTEXT].settings.service_auth_key, request)
        if identity.impersonator is not None and request.method not in _SAFE_METHODS:
            raise ImpersonationForbidden()
        request[IDENTITY] = identity
    elif path.startswith(INTERNAL_PREFIX):
        try:
            tokens.verify_service_call(request.app[CONTEXT].settings.service_auth_key,
                                       request.headers.get(tokens.SERVICE_AUTH_HEADER), audience="mfa")
        except tokens.InvalidToken:
            raise ServiceAuthRequired() from None
    return await handler(request)


def identity_of(request: web.Request) -> Identity:
    return request[IDENTITY]
