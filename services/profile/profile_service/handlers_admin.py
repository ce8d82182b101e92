"""HTTP handlers for /api/admin/*: MSP admins only (a client user gets 403)."""

from __future__ import annotations

from aiohttp import web
from portal_shared.web import json_response, no_content, require_body

from profile_service import admin, admin_console, admin_paging, admin_views, guard, sessions
from profile_service.bodies import read_body
from profile_service.keys import CONTEXT
from profile_service.models import Session
from profile_service.views import admin_user, session_info

routes = web.RouteTableDef()


@routes.post("/api/admin/clients")
async def create_client(request: web.Request) -> web.Response:
    guard.admin(request)
    body = await read_body(request)
    client = await admin.create_client(request.app[CONTEXT], body)
    return json_response(client.to_json(), status=201)


@routes.get("/api/admin/clients")
async def list_clients(request: web.Request) -> web.Response:
    """With `limit` or `cursor` (and `q`), a page of clients with their counts; else the plain list."""
    guard.admin(request)
    ctx = request.app[CONTEXT]
    if admin_paging.wanted(request.query):
        page = await admin_console.clients_page(ctx, request.query)
        return json_response(admin_views.page_json(page, "clients", admin_views.client_row))
    return json_response([c.to_json() for c in await admin.list_clients(ctx)])


@routes.get("/api/admin/clients/{id}")
async def client_detail(request: web.Request) -> web.Response:
    guard.admin(request)
    detail = await admin_console.client_detail(request.app[CONTEXT], request.match_info["id"])
    return json_response({**detail.client.to_json(), "user_count": detail.user_count,
                          "two_factor_count": detail.two_factor_count, "sso": detail.sso})


@routes.post("/api/admin/users")
async def create_user(request: web.Request) -> web.Response:
    session = guard.admin(request)
    body = await read_body(request)
    user = await admin.create_user(request.app[CONTEXT], session, body, ip=guard.meta(request)[1])
    return json_response(admin_user(user), status=201)


@routes.get("/api/admin/users")
async def list_users(request: web.Request) -> web.Response:
    """With `limit` or `cursor`, a page of users with their state (active, last sign-in, invitation)."""
    guard.admin(request)
    ctx = request.app[CONTEXT]
    if admin_paging.wanted(request.query):
        page = await admin_console.users_page(ctx, request.query)
        return json_response(admin_views.page_json(page, "users", admin_views.user_row))
    users = await admin.list_users(ctx, client_id=request.query.get("client_id"), query=request.query.get("q"))
    return json_response([admin_user(u) for u in users])


@routes.get("/api/admin/users/{id}")
async def user_detail(request: web.Request) -> web.Response:
    guard.admin(request)
    row = await admin_console.user_detail(request.app[CONTEXT], request.match_info["id"])
    return json_response(admin_views.user_row(row))


@routes.post("/api/admin/users/{id}/invitation")
async def resend_invitation(request: web.Request) -> web.Response:
    session = guard.admin(request)
    await read_body(request)
    await admin_console.resend_invitation(request.app[CONTEXT], session, request.match_info["id"],
                                          ip=guard.meta(request)[1])
    return web.Response(status=202)


@routes.post("/api/admin/users/{id}/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    session = guard.admin(request)
    await read_body(request)
    await admin_console.deactivate(request.app[CONTEXT], session, request.match_info["id"],
                                   ip=guard.meta(request)[1])
    return no_content()


@routes.post("/api/admin/users/{id}/reactivate")
async def reactivate(request: web.Request) -> web.Response:
    session = guard.admin(request)
    await read_body(request)
    await admin_console.reactivate(request.app[CONTEXT], session, request.match_info["id"],
                                   ip=guard.meta(request)[1])
    return no_content()


@routes.patch("/api/admin/users/{id}")
async def update_user(request: web.Request) -> web.Response:
    session = guard.admin(request)
    await require_body(request)
    body = await read_body(request)
    user = await admin.update_user(request.app[CONTEXT], session, request.match_info["id"], body,
                                   ip=guard.meta(request)[1])
    return json_response(admin_user(user))


async def _session_now(request: web.Request, session: Session, raw: str) -> web.Response:
    """The session (under its new id `raw`) as GET /api/auth/session shows it, with its new cookies."""
    ctx = request.app[CONTEXT]
    fresh = await sessions.load(ctx.pool, raw) or session
    response = json_response(session_info(fresh, raw, ctx.settings.service_auth_key))
    sessions.set_cookies(response, raw, ctx.settings)
    return response


@routes.post("/api/admin/users/{id}/impersonate")
async def impersonate(request: web.Request) -> web.Response:
    session = guard.admin(request)
    body = await read_body(request)
    raw = await admin.impersonate(request.app[CONTEXT], session, request.match_info["id"], body.get("reason"),
                                  ip=guard.meta(request)[1])
    return await _session_now(request, session, raw)


@routes.post("/api/admin/impersonation/stop")
async def stop_impersonation(request: web.Request) -> web.Response:
    session = guard.admin(request)
    await read_body(request)
    raw = await admin.stop_impersonation(request.app[CONTEXT], session, ip=guard.meta(request)[1])
    return await _session_now(request, session, raw)


@routes.post("/api/admin/users/{id}/mfa/reset")
async def reset_two_factor(request: web.Request) -> web.Response:
    session = guard.admin(request)
    await read_body(request)
    await admin.reset_two_factor(request.app[CONTEXT], session, request.match_info["id"], ip=guard.meta(request)[1])
    return no_content()


@routes.get("/api/admin/users/{id}/audit")
async def audit_log(request: web.Request) -> web.Response:
    """Newest first; `type` filters; with `limit` or `cursor`, a page."""
    guard.admin(request)
    ctx, query = request.app[CONTEXT], request.query
    paged = admin_paging.wanted(query)
    page = await admin_console.audit_log(ctx, request.match_info["id"], query, paged=paged)
    if paged:
        return json_response(admin_views.page_json(page, "audit", admin_views.audit_row))
    return json_response([admin_views.audit_row(r) for r in page.items])
