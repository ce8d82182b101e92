"""Internal endpoints (never exposed by the gateway): nginx auth_request, mfa's password check, its
two-factor latch and ending a user's other sessions when a factor changes."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from portal_shared import tokens
from portal_shared.ids import is_uuid
from portal_shared.problems import Problem
from portal_shared.web import json_response, read_json

from profile_service import accounts, guard, sessions, signin
from profile_service.keys import CONTEXT
from profile_service.models import SIGNED_IN, Session

IDENTITY_TTL_SECONDS = 60
# The signed-in person's own role (not the viewed account's): nginx gates the admin pages on it.
ROLE_HEADER = "X-Portal-Role"
routes = web.RouteTableDef()


def identity_claims(session: Session) -> dict[str, object]:
    """The identity payload of docs/internal-api.md: who the request acts as, and how fresh its sign-in is."""
    user = session.effective_user
    return {
        "sub": user.id,
        "sid": session.public_id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "imp": session.impersonator.brief() if session.impersonator else None,
        "auth_at": int(session.auth_at.timestamp()),
        "reauth_at": int(session.reauth_at.timestamp()) if session.reauth_at else None,
    }


@routes.get("/internal/auth")
async def auth_request(request: web.Request) -> web.Response:
    """nginx auth_request: 204 + X-Portal-Identity and X-Portal-Role when fully signed in; 401; 403 for
    CSRF/Origin."""
    ctx = request.app[CONTEXT]
    if not guard.origin_allowed(request.headers.get("Origin"), ctx.settings.origin):
        raise Problem(403, "Cross-origin requests are refused.", kind="origin-refused")
    raw = request.cookies.get(sessions.SESSION_COOKIE)
    session = await sessions.load(ctx.pool, raw)
    if session is None or raw is None or session.state != SIGNED_IN:
        raise Problem(401, "Sign in to continue.", kind="not-signed-in")
    method = request.headers.get("X-Original-Method", "GET").upper()
    if not guard.check_csrf(ctx.settings.service_auth_key, raw, method, request.headers.get(sessions.CSRF_HEADER)):
        raise Problem(403, "The CSRF token is missing or wrong.", kind="csrf-failed")
    token = tokens.sign(ctx.settings.service_auth_key, tokens.IDENTITY, identity_claims(session),
                        ttl_seconds=IDENTITY_TTL_SECONDS)
    return web.Response(status=204, headers={tokens.IDENTITY_HEADER: token, ROLE_HEADER: session.user.role})


def _from_mfa(request: web.Request) -> None:
    """Only a service call signed for profile (mfa's) may use the internal endpoints below."""
    try:
        tokens.verify_service_call(request.app[CONTEXT].settings.service_auth_key,
                                   request.headers.get(tokens.SERVICE_AUTH_HEADER), audience="profile")
    except tokens.InvalidToken:
        raise Problem(401, "Service authentication required.", kind="service-auth-required") from None


@routes.post("/internal/verify-password")
async def verify_password(request: web.Request) -> web.Response:
    """mfa confirms a user's password ({password} bodies); failures count toward the account throttle."""
    _from_mfa(request)
    ctx = request.app[CONTEXT]
    body = await read_json(request)
    user_id, password = body.get("user_id"), body.get("password")
    if not isinstance(user_id, str) or not isinstance(password, str):
        raise Problem(400, "Send {user_id, password}.", kind="malformed-body")
    ok = await signin.confirm_password(ctx, user_id if is_uuid(user_id) else None, password,
                                       ip=guard.client_ip(request))
    return json_response({"ok": ok})


@routes.post("/internal/users/{user_id}/two-factor-on")
async def two_factor_on(request: web.Request) -> web.Response:
    """mfa raises the user's two-factor flag before it commits turning two-factor on ({"at": ISO time}).

    Sign-in skips asking mfa while the flag is down, so the flag must be up before the first factor
    exists; the flag goes down only through mfa's events (docs/internal-api.md, "Two-factor latch").
    """
    _from_mfa(request)
    body = await read_json(request)
    try:
        user_id = str(uuid.UUID(request.match_info["user_id"]))
        at = datetime.fromisoformat(str(body.get("at")))
        if at.tzinfo is None:
            raise ValueError("no offset")
    except ValueError:
        raise Problem(400, "Send {at} (ISO 8601 with offset) for a user id.", kind="malformed-body") from None
    await accounts.raise_two_factor_latch(request.app[CONTEXT].pool, user_id, at)
    return web.Response(status=204)


@routes.post("/internal/users/{user_id}/sessions/end-others")
async def end_other_sessions(request: web.Request) -> web.Response:
    """mfa ends the user's other sessions when a factor is added or removed ({"keep_session_id": sid | null}).

    mfa calls it inside its transaction, before the commit, and changes nothing unless this answers 204:
    a session someone else holds must not outlive a change to how the account signs in.
    """
    _from_mfa(request)
    body = await read_json(request)
    try:
        user_id = str(uuid.UUID(request.match_info["user_id"]))
    except ValueError:
        raise Problem(400, "The user id is not valid.", kind="malformed-body") from None
    keep = body.get("keep_session_id", ...)  # required, null included: a forgotten field must not end them all
    try:
        if keep is not None and not isinstance(keep, str):
            raise ValueError("keep_session_id")
        keep_id = None if keep is None else str(uuid.UUID(keep))
    except ValueError:
        raise Problem(400, "Send {keep_session_id}: a session id, or null to end every session.",
                      kind="malformed-body", errors={"keep_session_id": ["a session id or null"]}) from None
    await sessions.end_others_for_factor_change(request.app[CONTEXT].pool, user_id, keep_id)
    return web.Response(status=204)
