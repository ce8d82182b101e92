"""Public handlers under /api/mfa (signed in, via the gateway): parse, call one service method, serialise."""

from __future__ import annotations

import uuid

from aiohttp import web
from portal_shared.web import json_response, no_content, read_json

from mfa_service import serialize
from mfa_service.errors import NotFound
from mfa_service.identity import identity_of
from mfa_service.keys import FACTORS, RECOVERY, TOTP, WEBAUTHN


def _key_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("No such security key.") from None


async def get_overview(request: web.Request) -> web.Response:
    view = await request.app[FACTORS].overview(identity_of(request).user_id)
    return json_response(serialize.overview(view))


async def totp_setup(request: web.Request) -> web.Response:
    await read_json(request)
    setup = await request.app[TOTP].setup(identity_of(request))
    return json_response({"secret": setup.secret, "otpauth_uri": setup.otpauth_uri, "qr_svg": setup.qr_svg})


async def totp_verify(request: web.Request) -> web.Response:
    body = await read_json(request)
    codes = await request.app[TOTP].enable(identity_of(request), body.get("code"))
    return json_response({"recovery_codes": codes})


async def totp_disable(request: web.Request) -> web.Response:
    body = await read_json(request)
    await request.app[TOTP].disable(identity_of(request), body.get("password"))
    return no_content()


async def webauthn_register_options(request: web.Request) -> web.Response:
    await read_json(request)
    return json_response(await request.app[WEBAUTHN].registration_options(identity_of(request)))


async def webauthn_register(request: web.Request) -> web.Response:
    body = await read_json(request)
    result = await request.app[WEBAUTHN].register(identity_of(request), body.get("credential"), body.get("name"))
    return json_response({"key": serialize.key(result.key), "recovery_codes": result.recovery_codes}, status=201)


async def webauthn_rename(request: web.Request) -> web.Response:
    body = await read_json(request, required=True)
    key = await request.app[WEBAUTHN].rename(identity_of(request), _key_id(request), body.get("name"))
    return json_response(serialize.key(key))


async def webauthn_delete(request: web.Request) -> web.Response:
    await request.app[WEBAUTHN].remove(identity_of(request), _key_id(request))
    return no_content()


async def recovery_codes_regenerate(request: web.Request) -> web.Response:
    body = await read_json(request)
    codes = await request.app[RECOVERY].regenerate(identity_of(request), body.get("password"))
    return json_response({"recovery_codes": codes})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/mfa", get_overview)
    app.router.add_post("/api/mfa/totp/setup", totp_setup)
    app.router.add_post("/api/mfa/totp/verify", totp_verify)
    app.router.add_post("/api/mfa/totp/disable", totp_disable)
    app.router.add_post("/api/mfa/webauthn/register/options", webauthn_register_options)
    app.router.add_post("/api/mfa/webauthn/register", webauthn_register)
    app.router.add_patch("/api/mfa/webauthn/{id}", webauthn_rename)
    app.router.add_delete("/api/mfa/webauthn/{id}", webauthn_delete)
    app.router.add_post("/api/mfa/recovery-codes/regenerate", recovery_codes_regenerate)
