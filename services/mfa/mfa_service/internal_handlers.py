"""Internal handlers under /internal/ (profile calls them with a service token; never via the gateway)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from portal_shared.web import json_response, no_content, read_json

from mfa_service import serialize
from mfa_service.errors import InvalidInput, MalformedInput
from mfa_service.identity import valid_user_id
from mfa_service.keys import FACTORS, RECOVERY, TOTP, UNDO, WEBAUTHN
from mfa_service.undo import UndoRequest


def _user_id(value: Any, field: str = "user_id") -> str:
    if not valid_user_id(value):
        raise InvalidInput("A user id is required.", field=field)
    return value


def _code(body: dict[str, Any]) -> str:
    """The submitted code; anything that is not a plausible code becomes "" and simply fails to verify.

    Profile relays what users type: a silly code must answer ok=false, never an error profile turns into a 5xx.
    """
    code = body.get("code")
    return code if isinstance(code, str) and len(code) <= 100 else ""


async def factors(request: web.Request) -> web.Response:
    view = await request.app[FACTORS].summary(_user_id(request.match_info["user_id"]))
    return json_response({"two_factor_enabled": view.two_factor_enabled, "second_factors": view.second_factors,
                          "recovery_codes_remaining": view.recovery_codes_remaining})


async def verify_totp(request: web.Request) -> web.Response:
    body = await read_json(request)
    ok = await request.app[TOTP].verify(_user_id(body.get("user_id")), _code(body))
    return json_response({"ok": ok})


async def verify_recovery_code(request: web.Request) -> web.Response:
    body = await read_json(request)
    ok, remaining = await request.app[RECOVERY].spend(_user_id(body.get("user_id")), _code(body))
    return json_response({"ok": ok, "remaining": remaining})


async def webauthn_options(request: web.Request) -> web.Response:
    body = await read_json(request)
    if "user_id" not in body:
        raise InvalidInput("user_id is required (null for a passkey).", field="user_id")
    user_id = None if body["user_id"] is None else _user_id(body["user_id"])
    challenge_id, options = await request.app[WEBAUTHN].authentication_options(user_id)
    return json_response({"challenge_id": str(challenge_id), "options": options})


async def verify_webauthn(request: web.Request) -> web.Response:
    body = await read_json(request)
    try:
        challenge_id = uuid.UUID(str(body.get("challenge_id")))
    except ValueError:
        raise InvalidInput("challenge_id is required.", field="challenge_id") from None
    user_id = None if body.get("user_id") is None else _user_id(body["user_id"])
    owner = await request.app[WEBAUTHN].verify_assertion(challenge_id, user_id, body.get("credential"))
    return json_response({"ok": owner is not None, "user_id": owner})


async def reset(request: web.Request) -> web.Response:
    body = await read_json(request)
    admin_id = _user_id(body.get("admin_id"), "admin_id")
    await request.app[FACTORS].reset(_user_id(request.match_info["user_id"]), admin_id)
    return no_content()


async def undo(request: web.Request) -> web.Response:
    """A "This wasn't me" undo of one reported change (undo.py); 400 for a body it cannot act on."""
    user_id = request.match_info["user_id"]
    if not valid_user_id(user_id):
        raise MalformedInput("The user id is not valid.")
    result = await request.app[UNDO].undo(user_id, UndoRequest.parse(await read_json(request)))
    return json_response({"undone": result.undone, "two_factor_enabled": result.two_factor_enabled,
                          "at": serialize.timestamp(result.at)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/internal/users/{user_id}/factors", factors)
    app.router.add_post("/internal/verify/totp", verify_totp)
    app.router.add_post("/internal/verify/recovery-code", verify_recovery_code)
    app.router.add_post("/internal/webauthn/options", webauthn_options)
    app.router.add_post("/internal/verify/webauthn", verify_webauthn)
    app.router.add_post("/internal/users/{user_id}/reset", reset)
    app.router.add_post("/internal/users/{user_id}/undo", undo)
