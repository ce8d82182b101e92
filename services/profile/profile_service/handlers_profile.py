"""HTTP handlers for /api/profile: the signed-in user's own account."""

from __future__ import annotations

from aiohttp import web
from portal_shared.web import json_response, no_content, require_body

from profile_service import accounts, guard, sessions
from profile_service.bodies import read_body
from profile_service.keys import CONTEXT
from profile_service.views import profile

routes = web.RouteTableDef()


@routes.get("/api/profile")
async def get_profile(request: web.Request) -> web.Response:
    session = guard.signed_in(request)
    return json_response(profile(session.effective_user, session.impersonator))


@routes.patch("/api/profile")
async def patch_profile(request: web.Request) -> web.Response:
    session = guard.signed_in(request)
    # The contract's body is an object ({} changes nothing); no body at all is a malformed request.
    await require_body(request)
    body = await read_body(request)
    user = await accounts.update_profile(request.app[CONTEXT], session, body, ip=guard.meta(request)[1])
    return json_response(profile(user, session.impersonator))


@routes.post("/api/profile/password")
async def change_password(request: web.Request) -> web.Response:
    session = guard.not_impersonating(guard.signed_in(request))
    body = await read_body(request)
    ctx = request.app[CONTEXT]
    raw = await accounts.change_password(ctx, session, body, ip=guard.meta(request)[1])
    response = no_content()
    sessions.set_cookies(response, raw, ctx.settings)
    return response
