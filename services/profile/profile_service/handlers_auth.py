"""HTTP handlers for /api/auth/*: parse and check the request, call one service function, shape the answer."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from portal_shared.web import json_response, no_content

from profile_service import activity, devices, guard, reauth, recovery, second_factors, sessions, signin, undo
from profile_service.bodies import read_body
from profile_service.errors import NotSignedIn, ReauthRequired, ValidationFailed
from profile_service.keys import CONTEXT, PENDING_COOKIE, SESSION
from profile_service.validation import FieldError, clean_email
from profile_service.views import session_info

PASSKEY_COOKIE = "portal_passkey_challenge"
PASSKEY_PATH = "/api/auth/login/passkey"
TWO_FACTOR_HEADER = "X-Portal-Two-Factor"

routes = web.RouteTableDef()


def _strings(body: dict[str, Any], *names: str) -> list[str]:
    """The named fields as strings; missing or non-string ones are 422 field errors."""
    errors = {n: ["This field is required."] for n in names if not isinstance(body.get(n), str) or not body[n]}
    if errors:
        raise ValidationFailed(errors)
    return [body[n] for n in names]


def _signed_in_response(request: web.Request, result: signin.SignInResult) -> web.Response:
    response = json_response(result.to_json())
    sessions.set_cookies(response, result.raw_session_id, request.app[CONTEXT].settings)
    if result.device_cookie:  # a completed sign-in: this browser is now a known device of the account
        devices.set_cookie(response, result.device_cookie, request.app[CONTEXT].settings)
    return response


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    email, password = _strings(await read_body(request), "email", "password")
    user_agent, ip = guard.meta(request)
    result = await signin.login(request.app[CONTEXT], email=email.strip(), password=password,
                                previous=request[SESSION], user_agent=user_agent, ip=ip,
                                device_cookie=devices.cookie(request))
    return _signed_in_response(request, result)


async def _second_factor(request: web.Request, factor: second_factors.Factor, value: Any) -> web.Response:
    result = await signin.second_factor(request.app[CONTEXT], request[PENDING_COOKIE], factor=factor, value=value,
                                        ip=guard.meta(request)[1], device_cookie=devices.cookie(request))
    return _signed_in_response(request, result)


@routes.post("/api/auth/login/totp")
async def login_totp(request: web.Request) -> web.Response:
    (code,) = _strings(await read_body(request), "code")
    return await _second_factor(request, second_factors.TOTP, code)


@routes.post("/api/auth/login/recovery-code")
async def login_recovery_code(request: web.Request) -> web.Response:
    (code,) = _strings(await read_body(request), "code")
    return await _second_factor(request, second_factors.RECOVERY_CODE, code)


@routes.post("/api/auth/login/webauthn/options")
async def login_webauthn_options(request: web.Request) -> web.Response:
    await read_body(request)
    return json_response(await signin.webauthn_options(request.app[CONTEXT], request[SESSION]))


@routes.post("/api/auth/login/webauthn")
async def login_webauthn(request: web.Request) -> web.Response:
    body = await read_body(request)
    if not isinstance(body.get("credential"), dict):
        raise ValidationFailed({"credential": ["This field is required."]})
    return await _second_factor(request, second_factors.SECURITY_KEY, body["credential"])


@routes.post("/api/auth/login/passkey/options")
async def login_passkey_options(request: web.Request) -> web.Response:
    await read_body(request)
    ctx = request.app[CONTEXT]
    challenge = await ctx.mfa.webauthn_options(None)
    response = json_response(challenge.options)
    response.set_cookie(PASSKEY_COOKIE, challenge.challenge_id, httponly=True, samesite="Strict", path=PASSKEY_PATH,
                        max_age=300, secure=ctx.settings.secure_cookies)
    return response


@routes.post("/api/auth/login/passkey")
async def login_passkey(request: web.Request) -> web.Response:
    body = await read_body(request)
    if not isinstance(body.get("credential"), dict):
        raise ValidationFailed({"credential": ["This field is required."]})
    user_agent, ip = guard.meta(request)
    result = await signin.passkey(request.app[CONTEXT], challenge_id=request.cookies.get(PASSKEY_COOKIE),
                                  credential=body["credential"], previous=request[SESSION],
                                  user_agent=user_agent, ip=ip, device_cookie=devices.cookie(request))
    response = _signed_in_response(request, result)
    response.del_cookie(PASSKEY_COOKIE, path=PASSKEY_PATH)
    return response


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    ctx, session = request.app[CONTEXT], request[SESSION]
    if session is not None:
        await sessions.logout(ctx.pool, session, ip=guard.meta(request)[1])
    response = no_content()
    sessions.clear_cookies(response, ctx.settings)
    return response


@routes.get("/api/auth/session")
async def current_session(request: web.Request) -> web.Response:
    session = request[SESSION]
    if session is None or session.state not in ("signed_in", "second_factor_required"):
        raise NotSignedIn()
    raw, ctx = request.cookies[sessions.SESSION_COOKIE], request.app[CONTEXT]
    issuer, factors = await signin.session_details(ctx, session)
    return json_response(session_info(session, raw, ctx.settings.service_auth_key, sso_issuer=issuer,
                                      second_factors=factors))


@routes.get("/api/auth/activity")
async def recent_activity(request: web.Request) -> web.Response:
    """The signed-in account's security activity, newest first (the Security tab's Recent activity)."""
    session = guard.signed_in(request)
    return json_response(await activity.feed(request.app[CONTEXT].pool, session.effective_user.id,
                                             cursor=request.query.get("cursor"), limit=request.query.get("limit")))


@routes.post("/api/auth/activity/{id}/undo")
async def undo_activity(request: web.Request) -> web.Response:
    """Undo a change from the activity feed, in place (after a re-authentication in the last 10 minutes)."""
    session = guard.not_impersonating(guard.signed_in(request))
    await read_body(request)
    if not sessions.recently_authenticated(session):
        raise ReauthRequired()
    result = await undo.undo_in_place(request.app[CONTEXT], session, request.match_info["id"],
                                      ip=guard.meta(request)[1])
    return json_response({"undone": result.undone_type is not None,
                          "two_factor_disabled": result.two_factor_disabled})


@routes.get("/api/auth/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    session = guard.signed_in(request)
    return json_response(await sessions.list_sessions(request.app[CONTEXT].pool, session))


@routes.delete("/api/auth/sessions/{id}")
async def revoke_session(request: web.Request) -> web.Response:
    session = guard.signed_in(request)
    ctx = request.app[CONTEXT]
    current = await sessions.revoke(ctx.pool, session, request.match_info["id"], ip=guard.meta(request)[1])
    response = no_content()
    if current:
        sessions.clear_cookies(response, ctx.settings)
    return response


@routes.delete("/api/auth/sessions")
async def revoke_other_sessions(request: web.Request) -> web.Response:
    session = guard.signed_in(request)
    await sessions.revoke_others(request.app[CONTEXT].pool, session, ip=guard.meta(request)[1])
    return no_content()


@routes.post("/api/auth/reauth/webauthn/options")
async def reauth_webauthn_options(request: web.Request) -> web.Response:
    session = guard.not_impersonating(guard.signed_in(request))
    await read_body(request)
    return json_response(await reauth.webauthn_options(request.app[CONTEXT], session))


@routes.post("/api/auth/reauth")
async def reauthenticate(request: web.Request) -> web.Response:
    session = guard.not_impersonating(guard.signed_in(request))
    body = await read_body(request)
    ctx = request.app[CONTEXT]
    raw = await reauth.reauthenticate(ctx, session, body, ip=guard.meta(request)[1],
                                      device_cookie=devices.cookie(request))
    response = no_content()
    sessions.set_cookies(response, raw, ctx.settings)
    return response


@routes.post("/api/auth/password-reset")
async def password_reset(request: web.Request) -> web.Response:
    body = await read_body(request)
    try:
        email = clean_email(body.get("email"))
    except FieldError as exc:
        raise ValidationFailed({"email": [str(exc)]}) from None
    ctx = request.app[CONTEXT]
    # The work happens after the answer: 202 in the same time whether or not the account exists.
    ctx.spawn(recovery.request_reset(ctx, email, ip=guard.meta(request)[1]), name="password-reset")
    return web.Response(status=202)


@routes.post("/api/auth/password-reset/confirm")
async def password_reset_confirm(request: web.Request) -> web.Response:
    body = await read_body(request)
    await recovery.confirm_reset(request.app[CONTEXT], body, ip=guard.meta(request)[1])
    return _signed_out(request)


@routes.post("/api/auth/invitation/accept")
async def invitation_accept(request: web.Request) -> web.Response:
    body = await read_body(request)
    await recovery.accept_invitation(request.app[CONTEXT], body, ip=guard.meta(request)[1])
    return _signed_out(request)


@routes.post("/api/auth/not-me")
async def not_me(request: web.Request) -> web.Response:
    body = await read_body(request)
    result = await undo.not_me(request.app[CONTEXT], body.get("token"), ip=guard.meta(request)[1])
    response = _signed_out(request)
    if result.two_factor_disabled:
        # The contract's answer is a bare 204; the page learns from this header that it should say so.
        response.headers[TWO_FACTOR_HEADER] = "off"
    return response


def _signed_out(_: web.Request) -> web.Response:
    """204; the account's sessions were ended server-side (never a sign-in: the user signs in afresh)."""
    return no_content()
