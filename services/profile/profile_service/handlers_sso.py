"""HTTP handlers of single sign-on: the email-first sign-in methods, start, callback, re-authentication
and the admin's provider settings."""

from __future__ import annotations

import structlog
from aiohttp import web
from portal_shared.errors import DomainError
from portal_shared.web import json_response, no_content

from profile_service import devices, guard, sessions, sso, sso_admin
from profile_service.bodies import read_body
from profile_service.keys import CONTEXT, SESSION
from profile_service.models import SIGNED_IN

log = structlog.get_logger("profile.sso")
CALLBACK_PATH = "/api/auth/sso/callback"
SIGNED_IN_PAGE = "/portal/profile"
SECOND_FACTOR_PAGE = "/portal/login?step=second-factor"
FAILED_PAGE = "/portal/login?error=sso"
REAUTH_DONE_PAGE = "/portal/profile?reauth=sso"

routes = web.RouteTableDef()


@routes.post("/api/auth/sign-in-methods")
async def sign_in_methods(request: web.Request) -> web.Response:
    body = await read_body(request)
    return json_response({"methods": await sso.sign_in_methods(request.app[CONTEXT], body.get("email"))})


def _started(request: web.Request, started: sso.Started) -> web.Response:
    response = json_response({"redirect_url": started.redirect_url})
    # Lax, not Strict: the provider brings the browser back with a cross-site top-level GET, which must
    # carry this cookie. Its path is the callback's alone.
    response.set_cookie(sso.BROWSER_COOKIE, started.browser_token, httponly=True, samesite="Lax",
                        path=CALLBACK_PATH, max_age=int(sso.LOGIN_LIFETIME.total_seconds()),
                        secure=request.app[CONTEXT].settings.secure_cookies)
    return response


@routes.post("/api/auth/sso/start")
async def start(request: web.Request) -> web.Response:
    body = await read_body(request)
    started = await sso.start(request.app[CONTEXT], email=body.get("email"),
                              browser_token=request.cookies.get(sso.BROWSER_COOKIE))
    return _started(request, started)


@routes.post("/api/auth/reauth/sso/start")
async def reauth_start(request: web.Request) -> web.Response:
    session = guard.not_impersonating(guard.signed_in(request))
    await read_body(request)
    started = await sso.start(request.app[CONTEXT], reauth=session,
                              browser_token=request.cookies.get(sso.BROWSER_COOKIE))
    return _started(request, started)


@routes.get(CALLBACK_PATH)
async def callback(request: web.Request) -> web.Response:
    """A browser navigation from the provider: always a redirect to a portal page, never a JSON error."""
    ctx = request.app[CONTEXT]
    user_agent, ip = guard.meta(request)
    try:
        result = await sso.callback(ctx, dict(request.query), browser_token=request.cookies.get(sso.BROWSER_COOKIE),
                                    current=request[SESSION], user_agent=user_agent, ip=ip,
                                    device_cookie=devices.cookie(request))
    except (sso.SsoFailed, DomainError) as exc:  # DomainError: mfa down while deciding the second factor
        log.warning("sso_callback_failed", reason=str(exc) or type(exc).__name__, ip=ip)
        return _redirect(FAILED_PAGE)
    if result.reauth_raw_session_id is not None:
        response = _redirect(REAUTH_DONE_PAGE)
        sessions.set_cookies(response, result.reauth_raw_session_id, ctx.settings)
        return response
    assert result.sign_in is not None
    response = _redirect(SIGNED_IN_PAGE if result.sign_in.state == SIGNED_IN else SECOND_FACTOR_PAGE)
    sessions.set_cookies(response, result.sign_in.raw_session_id, ctx.settings)
    if result.sign_in.device_cookie:
        devices.set_cookie(response, result.sign_in.device_cookie, ctx.settings)
    return response


def _redirect(location: str) -> web.Response:
    # The browser cookie stays (it expires by itself): another tab's sign-in may still come back with it.
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


@routes.put("/api/admin/clients/{id}/sso")
async def configure(request: web.Request) -> web.Response:
    session = guard.not_impersonating(guard.admin(request))
    body = await read_body(request)
    provider = await sso_admin.configure(request.app[CONTEXT], session, request.match_info["id"], body,
                                         ip=guard.meta(request)[1])
    return json_response(sso_admin.sso_json(provider))


@routes.delete("/api/admin/clients/{id}/sso")
async def remove(request: web.Request) -> web.Response:
    session = guard.not_impersonating(guard.admin(request))
    await sso_admin.remove(request.app[CONTEXT], session, request.match_info["id"], ip=guard.meta(request)[1])
    return no_content()


@routes.post("/api/admin/sso/discovery")
async def test_discovery(request: web.Request) -> web.Response:
    """The console's "Test sign-in": what discovery finds at an issuer (nothing is saved)."""
    guard.admin(request)
    return json_response(await sso_admin.test(request.app[CONTEXT], await read_body(request)))
