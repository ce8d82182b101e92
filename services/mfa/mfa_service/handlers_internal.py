"""Internal handlers under /internal/ (profile calls them with a service token; never via the gateway).

Each parses and checks its ids here, at the edge, and calls one service method (never a repository).
The verification answers (TOTP, recovery code, WebAuthn) all carry `ok` and `recovery_codes_remaining`
(checks.Check), so profile's sign-in needs no second call after a success (docs/internal-api.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from portal_shared.ids import is_uuid
from portal_shared.web import json_response, no_content, read_json

from mfa_service import serialize
from mfa_service.errors import MalformedInput, field_error
from mfa_service.keys import CONTEXT
from mfa_service.principal import valid_user_id
from mfa_service.undo import UndoRequest

routes = web.RouteTableDef()


def _user_id(value: Any, field: str = "user_id") -> str:
    if not valid_user_id(value):
        raise field_error(field, "A user id is required.")
    return value


def _code(body: dict[str, Any]) -> str:
    """The submitted code; anything that is not a plausible code becomes "" and simply fails to verify.

    Profile relays what users type: a silly code must answer ok=false, never an error profile turns into a 5xx.
    """
    code = body.get("code")
    return code if isinstance(code, str) and len(code) <= 100 else ""


@routes.get("/internal/users/{user_id}/factors")
async def factors(request: web.Request) -> web.Response:
    view = await request.app[CONTEXT].factors.summary(_user_id(request.match_info["user_id"]))
    return json_response({"two_factor_enabled": view.two_factor_enabled, "second_factors": view.second_factors,
                          "recovery_codes_remaining": view.recovery_codes_remaining})


@routes.post("/internal/verify/totp")
async def verify_totp(request: web.Request) -> web.Response:
    body = await read_json(request)
    check = await request.app[CONTEXT].totp.verify(_user_id(body.get("user_id")), _code(body))
    return json_response(check.answer())


@routes.post("/internal/verify/recovery-code")
async def verify_recovery_code(request: web.Request) -> web.Response:
    body = await read_json(request)
    check, remaining = await request.app[CONTEXT].recovery.spend(_user_id(body.get("user_id")), _code(body))
    # `remaining` (counted whether or not the code passed) predates `recovery_codes_remaining`; kept for callers.
    return json_response({**check.answer(), "remaining": remaining})


@routes.post("/internal/webauthn/options")
async def webauthn_options(request: web.Request) -> web.Response:
    body = await read_json(request)
    if "user_id" not in body:
        raise field_error("user_id", "user_id is required (null for a passkey).")
    user_id = None if body["user_id"] is None else _user_id(body["user_id"])
    challenge_id, options = await request.app[CONTEXT].webauthn.authentication_options(user_id)
    return json_response({"challenge_id": str(challenge_id), "options": options})


@routes.post("/internal/verify/webauthn")
async def verify_webauthn(request: web.Request) -> web.Response:
    body = await read_json(request)
    raw_challenge_id = body.get("challenge_id")
    if not is_uuid(raw_challenge_id):
        raise field_error("challenge_id", "challenge_id is required.")
    user_id = None if body.get("user_id") is None else _user_id(body["user_id"])
    check = await request.app[CONTEXT].webauthn.verify_assertion(uuid.UUID(raw_challenge_id), user_id,
                                                                 body.get("credential"))
    return json_response({**check.answer(), "user_id": check.user_id})


@routes.post("/internal/users/{user_id}/reset")
async def reset(request: web.Request) -> web.Response:
    body = await read_json(request)
    admin_id = _user_id(body.get("admin_id"), "admin_id")
    await request.app[CONTEXT].factors.reset(_user_id(request.match_info["user_id"]), admin_id)
    return no_content()


@routes.post("/internal/users/{user_id}/undo")
async def undo(request: web.Request) -> web.Response:
    """A "This wasn't me" undo of one reported change (undo.py); 400 for a body it cannot act on."""
    user_id = request.match_info["user_id"]
    if not valid_user_id(user_id):
        raise MalformedInput("The user id is not valid.")
    result = await request.app[CONTEXT].undo.undo(user_id, UndoRequest.parse(await read_json(request)))
    return json_response({"undone": result.undone, "two_factor_enabled": result.two_factor_enabled,
                          "at": serialize.timestamp(result.at)})
