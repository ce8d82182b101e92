"""Who is calling: client address, Origin check, per-IP limit, the session cookie and its CSRF token.

One middleware authenticates each /api/ request once; handlers then ask `signed_in(request)` etc.
"""

from __future__ import annotations

from aiohttp import web
from portal_shared import actor
from portal_shared.problems import Problem
from portal_shared.web import Handler

from profile_service import sessions
from profile_service.errors import Forbidden, ImpersonationForbidden, NotSignedIn
from profile_service.keys import CLIENT_IP, CONTEXT, PENDING_COOKIE, SESSION
from profile_service.models import SIGNED_IN, Session

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A second-factor attempt loads its pending sign-in in the statement that takes the attempt
# (signin.second_factor): the middleware's load would read the same row one round trip earlier.
SECOND_STEP_PATHS = frozenset({"/api/auth/login/totp", "/api/auth/login/recovery-code", "/api/auth/login/webauthn"})


def client_ip(request: web.Request) -> str:
    """The gateway's X-Real-IP / X-Forwarded-For, trusted only from a loopback or private peer."""
    return actor.client_ip(request)


def origin_allowed(origin: str | None, portal_origin: str) -> bool:
    """An absent Origin is fine (same-origin GETs, non-browser clients); a present one must be ours."""
    return origin is None or origin.rstrip("/").lower() == portal_origin


def check_csrf(key: str, raw_session_id: str, method: str, header: str | None) -> bool:
    return method not in UNSAFE_METHODS or sessions.csrf_matches(key, raw_session_id, header)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[CLIENT_IP] = client_ip(request)
    request[SESSION] = None
    request[PENDING_COOKIE] = None
    if not request.path.startswith("/api/"):
        return await handler(request)
    ctx = request.app[CONTEXT]
    if not origin_allowed(request.headers.get("Origin"), ctx.settings.origin):
        raise Problem(403, "Cross-origin requests are refused.", kind="origin-refused")
    if request.path.startswith("/api/auth/"):
        wait = ctx.ip_limiter.hit(request[CLIENT_IP])
        if wait:
            raise Problem(429, "Too many requests from this address; try again shortly.",
                          headers={"Retry-After": str(wait)})
    raw = request.cookies.get(sessions.SESSION_COOKIE)
    if (sessions.plausible(raw) and request.method == "POST" and request.path in SECOND_STEP_PATHS
            and sessions.csrf_matches(ctx.settings.service_auth_key, raw, request.headers.get(sessions.CSRF_HEADER))):
        request[PENDING_COOKIE] = raw  # a wrong token goes the usual way below: 403 when the session exists
        return await handler(request)
    session = await sessions.load(ctx.pool, raw)
    if session is not None and raw is not None:
        if not check_csrf(ctx.settings.service_auth_key, raw, request.method,
                          request.headers.get(sessions.CSRF_HEADER)):
            raise Problem(403, "The CSRF token is missing or wrong.", kind="csrf-failed")
        request[SESSION] = session
    return await handler(request)


def signed_in(request: web.Request) -> Session:
    """The fully signed-in session, or 401."""
    session = request[SESSION]
    if session is None or session.state != SIGNED_IN:
        raise NotSignedIn()
    return session


def admin(request: web.Request) -> Session:
    """A signed-in session whose own account (not the impersonated one) is an MSP admin, or 403."""
    session = signed_in(request)
    if not session.user.is_admin:
        raise Forbidden("Only MSP admins may do this.")
    return session


def not_impersonating(session: Session) -> Session:
    if session.impersonated is not None:
        raise ImpersonationForbidden()
    return session


def meta(request: web.Request) -> tuple[str, str]:
    """(user agent, client ip) recorded with sessions and audit entries."""
    return actor.user_agent(request), request[CLIENT_IP]
