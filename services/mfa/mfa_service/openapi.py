"""The OpenAPI 3.1 document of mfa's public API (the contract's Two-factor table), served at /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from portal_shared.web import json_response

_TS = {"type": ["string", "null"], "format": "date-time"}
_CODES = {"type": ["array", "null"], "items": {"type": "string"}, "minItems": 10, "maxItems": 10}
SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                       "detail": {"type": "string"},
                       "errors": {"type": "object", "additionalProperties": {"type": "array",
                                                                              "items": {"type": "string"}}}},
    },
    "Key": {
        "type": "object", "required": ["id", "name", "passkey", "created_at", "last_used_at"],
        "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
                       "passkey": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"},
                       "last_used_at": _TS},
    },
    "Overview": {
        "type": "object", "required": ["two_factor_enabled", "totp", "security_keys", "recovery_codes"],
        "properties": {
            "two_factor_enabled": {"type": "boolean"},
            "totp": {"type": "object", "required": ["enabled", "enabled_at"],
                     "properties": {"enabled": {"type": "boolean"}, "enabled_at": _TS}},
            "security_keys": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}},
            "recovery_codes": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["remaining"],
                                                            "properties": {"remaining": {"type": "integer"}}}]},
        },
    },
    "RecoveryCodes": {"type": "object", "required": ["recovery_codes"], "properties": {"recovery_codes": _CODES}},
    "WebAuthnOptions": {"type": "object", "description": "py_webauthn options_to_json, bare (no publicKey wrapper)"},
}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    reasons = {400: "Malformed body", 401: "Not signed in", 403: "Forbidden (impersonation, reauth-required)",
               404: "Not found", 409: "Conflict with current state", 422: "Validation failed"}
    return {str(s): {"description": reasons[s], "content": {"application/problem+json": {"schema": _ref("Problem")}}}
            for s in statuses}


def _op(summary: str, ok: tuple[int, dict[str, Any] | None], *errors: int, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status, schema = ok
    response: dict[str, Any] = {"description": summary}
    if schema is not None:
        response["content"] = _json(schema)
    op: dict[str, Any] = {"summary": summary, "responses": {str(status): response, **_problems(401, *errors)}}
    if body is not None:
        op["requestBody"] = {"required": False, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


_KEY_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_PASSWORD = _obj(password={"type": "string"})
_BAD = (400, 403)

PATHS: dict[str, dict[str, Any]] = {
    "/api/mfa": {"get": _op("Two-factor overview", (200, _ref("Overview")))},
    "/api/mfa/totp/setup": {"post": _op("Start authenticator app setup", (200, {
        "type": "object", "required": ["secret", "otpauth_uri", "qr_svg"],
        "properties": {"secret": {"type": "string"}, "otpauth_uri": {"type": "string"},
                       "qr_svg": {"type": "string"}}}), *_BAD, 409)},
    "/api/mfa/totp/verify": {"post": _op("Enable the app with its first code", (200, _ref("RecoveryCodes")),
                                         *_BAD, 409, 422, body=_obj(code={"type": "string"}))},
    "/api/mfa/totp/disable": {"post": _op("Disable the authenticator app", (204, None), *_BAD, 409, 422,
                                          body=_PASSWORD)},
    "/api/mfa/webauthn/register/options": {"post": _op("WebAuthn creation options (credProps asked)",
                                                       (200, _ref("WebAuthnOptions")), *_BAD)},
    "/api/mfa/webauthn/register": {"post": _op("Register a security key or passkey", (201, {
        "type": "object", "required": ["key", "recovery_codes"],
        "properties": {"key": _ref("Key"), "recovery_codes": _CODES}}), *_BAD, 409, 422,
        body=_obj(credential={"type": "object"}, name={"type": "string", "minLength": 1, "maxLength": 64}))},
    "/api/mfa/webauthn/{id}": {
        "patch": _op("Rename a key", (200, _ref("Key")), *_BAD, 404, 422,
                     body=_obj(name={"type": "string", "minLength": 1, "maxLength": 64}), params=_KEY_ID),
        "delete": _op("Remove a key (needs a recent sign-in or re-authentication)", (204, None), *_BAD, 404,
                      params=_KEY_ID),
    },
    "/api/mfa/recovery-codes/regenerate": {"post": _op("Regenerate recovery codes", (200, _ref("RecoveryCodes")),
                                                       *_BAD, 409, 422, body=_PASSWORD)},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Portal Account Services: two-factor (mfa)", "version": "1.0.0",
                 "description": "Signed in through the gateway, which sends X-Portal-Identity."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }


async def serve_document(_: web.Request) -> web.Response:
    return json_response(document())
