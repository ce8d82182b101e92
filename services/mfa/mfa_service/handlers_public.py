"""Public handlers under /api/mfa (signed in, via the gateway): parse, call one service method, serialise."""

from __future__ import annotations

import uuid

from aiohttp import web
from portal_shared.ids import is_uuid
from portal_shared.web import json_response, no_content, read_json

from mfa_service import openapi, serialize
from mfa_service.errors import NotFound
from mfa_service.identity import identity_of
from mfa_service.keys import CONTEXT

routes = web.RouteTableDef()


def _key_id(request: web.Request) -> uuid.UUID:
    """The path's key id; anything but a canonical UUID names no key (404), parsed here, never below."""
    raw = request.match_info["id"]
    if not is_uuid(raw):
        raise NotFound("No such security key.")
    return uuid.UUID(raw)


@routes.get("/api/mfa")
async def get_overview(request: web.Request) -> web.Response:
    view = await request.app[CONTEXT].factors.overview(identity_of(request).user_id)
    return json_response(serialize.overview(view))


@routes.post("/api/mfa/totp/setup")
async def totp_setup(request: web.Request) -> web.Response:
    await read_json(request)
    setup = await request.app[CONTEXT].totp.setup(identity_of(request))
    return json_response({"secret": setup.secret, "otpauth_uri": setup.otpauth_uri, "qr_svg": setup.qr_svg})


@routes.post("/api/mfa/totp/verify")
async def totp_verify(request: web.Request) -> web.Response:
    body = await read_json(request)
    codes = await request.app[CONTEXT].totp.enable(identity_of(request), body.get("code"))
    return json_response({"recovery_codes": codes})


@routes.post("/api/mfa/totp/disable")
async def totp_disable(request: web.Request) -> web.Response:
    body = await read_json(request)
    await request.app[CONTEXT].totp.disable(identity_of(request), body.get("password"))
    return no_content()


@routes.post("/api/mfa/webauthn/register/options")
async def webauthn_register_options(request: web.Request) -> web.Response:
    await read_json(request)
    return json_response(await request.app[CONTEXT].webauthn.registration_options(identity_of(request)))


@routes.post("/api/mfa/webauthn/register")
async def webauthn_register(request: web.Request) -> web.Response:
    body = await read_json(request)
    result = await request.app[CONTEXT].webauthn.register(identity_of(request), body.get("credential"),
                                                          body.get("name"))
    return json_response({"key": serialize.key(result.key), "recovery_codes": result.recovery_codes}, status=201)


@routes.patch("/api/mfa/webauthn/{id}")
async def webauthn_rename(request: web.Request) -> web.Response:
    body = await read_json(request, required=True)
    key = await request.app[CONTEXT].webauthn.rename(identity_of(request), _key_id(request), body.get("name"))
    return json_response(serialize.key(key))


@routes.delete("/api/mfa/webauthn/{id}")
async def webauthn_delete(request: web.Request) -> web.Response:
    await request.app[CONTEXT].webauthn.remove(identity_of(request), _key_id(request))
    return no_content()


@routes.post("/api/mfa/recovery-codes/regenerate")
async def recovery_codes_regenerate(request: web.Request) -> web.Response:
    body = await read_json(request)
    codes = await request.app[CONTEXT].recovery.regenerate(identity_of(request), body.get("password"))
    return json_response({"recovery_codes": codes})


@routes.get("/openapi.json")
async def openapi_document(_: web.Request) -> web.Response:
    return json_response(openapi.document())
