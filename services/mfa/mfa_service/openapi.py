"""The OpenAPI 3.1 document of mfa's public API (the contract's Two-factor table), served at /openapi.json.

It describes what the service really answers, errors included: every error is RFC 9457 problem+json
(the Problem schema), 401 without a valid identity, 403 for changes while impersonating, 400/413/415
for a body that is not a JSON object / too large / not JSON, 503 (with Retry-After) while Postgres or
profile cannot answer. tests/integration/mfa/test_mfa_fuzz.py holds the service to it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from portal_shared.web import MAX_BODY_BYTES

from mfa_service.codes import CODE_COUNT
from mfa_service.principal import REAUTH_WINDOW_SECONDS
from mfa_service.webauthn_keys import NAME_MAX

_TS = {"type": ["string", "null"], "format": "date-time"}
_CODE_LIST = {"type": "array", "items": {"type": "string", "pattern": "^[0-9A-Za-z]+(-[0-9A-Za-z]+)*$"},
              "minItems": CODE_COUNT, "maxItems": CODE_COUNT}
_PROBLEM_STATUSES = {
    400: "The body is not a JSON object (problem type `malformed-body`)",
    401: "No valid X-Portal-Identity (problem type `not-signed-in`)",
    403: "Forbidden: changes while an administrator impersonates (`impersonation-forbidden`), "
         "or no sign-in / re-authentication in the last 10 minutes when adding or removing a factor "
         "(`reauth-required`)",
    404: "No such security key (`not-found`)",
    409: "Conflict with the current state (`conflict`)",
    413: "The body is larger than the service accepts",
    415: "The body is not sent as application/json",
    422: "Field validation failed (`validation-failed`); `errors` names the field",
    503: "Postgres or the profile service cannot answer right now (`Retry-After` says when to retry)",
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "description": "RFC 9457 problem details; `status` equals the HTTP status.",
        "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
                       "status": {"type": "integer", "minimum": 400, "maximum": 599},
                       "detail": {"type": "string", "minLength": 1},
                       "errors": {"type": "object", "minProperties": 1,
                                  "additionalProperties": {"type": "array", "minItems": 1,
                                                           "items": {"type": "string"}}}},
    },
    "Key": {
        "type": "object", "required": ["id", "name", "passkey", "created_at", "last_used_at"],
        "additionalProperties": False,
        "properties": {"id": {"type": "string", "format": "uuid"},
                       "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
                       "passkey": {"type": "boolean", "description": "a discoverable credential with user "
                                                                     "verification: signs in without a password"},
                       "created_at": {"type": "string", "format": "date-time"}, "last_used_at": _TS},
    },
    "Overview": {
        "type": "object", "required": ["two_factor_enabled", "totp", "security_keys", "recovery_codes"],
        "additionalProperties": False,
        "properties": {
            "two_factor_enabled": {"type": "boolean"},
            "totp": {"type": "object", "required": ["enabled", "enabled_at"], "additionalProperties": False,
                     "properties": {"enabled": {"type": "boolean"}, "enabled_at": _TS}},
            "security_keys": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}},
            "recovery_codes": {"oneOf": [
                {"type": "null", "description": "two-factor is off"},
                {"type": "object", "required": ["remaining"], "additionalProperties": False,
                 "properties": {"remaining": {"type": "integer", "minimum": 0, "maximum": CODE_COUNT}}}]},
        },
    },
    "TotpSetup": {
        "type": "object", "required": ["secret", "otpauth_uri", "qr_svg"], "additionalProperties": False,
        "properties": {"secret": {"type": "string", "pattern": "^[A-Z2-7]{32}$", "description": "base32, 160 bits"},
                       "otpauth_uri": {"type": "string", "pattern": "^otpauth://totp/"},
                       "qr_svg": {"type": "string", "pattern": "^<svg"}},
    },
    "NewRecoveryCodes": {
        "type": "object", "required": ["recovery_codes"], "additionalProperties": False,
        "properties": {"recovery_codes": {"oneOf": [_CODE_LIST, {"type": "null"}],
                                          "description": "the new codes, shown once, when this turned "
                                                         "two-factor on; else null"}},
    },
    "RecoveryCodes": {
        "type": "object", "required": ["recovery_codes"], "additionalProperties": False,
        "properties": {"recovery_codes": _CODE_LIST},
    },
    "Registered": {
        "type": "object", "required": ["key", "recovery_codes"], "additionalProperties": False,
        "properties": {"key": {"$ref": "#/components/schemas/Key"},
                       "recovery_codes": {"oneOf": [_CODE_LIST, {"type": "null"}]}},
    },
    "CreationOptions": {
        "type": "object", "description": "py_webauthn options_to_json, bare (no publicKey wrapper)",
        "required": ["rp", "user", "challenge", "pubKeyCredParams", "timeout", "excludeCredentials",
                     "authenticatorSelection", "attestation", "extensions"],
        "properties": {
            "rp": {"type": "object", "required": ["id", "name"]},
            "user": {"type": "object", "required": ["id", "name", "displayName"]},
            "challenge": {"type": "string", "minLength": 1},
            "pubKeyCredParams": {"type": "array", "minItems": 1},
            "timeout": {"type": "integer"},
            "excludeCredentials": {"type": "array"},
            "authenticatorSelection": {"type": "object"},
            "attestation": {"const": "none"},
            "extensions": {"type": "object", "required": ["credProps"],
                           "properties": {"credProps": {"const": True}}},
        },
    },
    "CodeBody": {
        "type": "object", "required": ["code"],
        "properties": {"code": {"type": "string", "description": "the app's 6-digit code; spaces are ignored"}},
    },
    "PasswordBody": {
        "type": "object",
        "properties": {"password": {"type": ["string", "null"], "description": (
            "the account password; may be left out (or null, or empty) within "
            f"{REAUTH_WINDOW_SECONDS // 60} minutes of signing in or re-authenticating")}},
    },
    "RegisterBody": {
        "type": "object", "required": ["credential", "name"],
        "properties": {"credential": {"type": "object", "description": "the browser's "
                                                                      "PublicKeyCredential.toJSON()"},
                       "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX}},
    },
    "NameBody": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX}},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status in statuses:
        answer: dict[str, Any] = {"description": _PROBLEM_STATUSES[status],
                                  "content": {"application/problem+json": {"schema": _ref("Problem")}}}
        if status == 503:
            answer["headers"] = {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}}
        answers[str(status)] = answer
    return answers


def _op(summary: str, ok: tuple[int, str | None], *errors: int, body: str | None = None,
        params: list[dict[str, Any]] | None = None, reads_body: bool = True) -> dict[str, Any]:
    """An operation: its success answer, the problems every call can get, and those particular to it."""
    status, schema = ok
    response: dict[str, Any] = {"description": summary}
    if schema is not None:
        response["content"] = {"application/json": {"schema": _ref(schema)}}
    common = (401, 503, *((400, 413, 415) if reads_body else ()))
    op: dict[str, Any] = {"summary": summary,
                          "responses": {str(status): response, **_problems(*sorted({*common, *errors}))}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return op


_KEY_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
            "description": "a key's id from GET /api/mfa; anything else answers 404"}]
_CHANGE = 403  # every change answers 403 while an administrator impersonates

# Adding or removing a factor (security issue #13): 403 reauth-required without a recent sign-in, and the
# user's other sessions end when it is done.
_RECENT = "needs a sign-in or re-authentication in the last 10 minutes"
_ENDS = "ends the user's other sessions"

PATHS: dict[str, dict[str, Any]] = {
    "/api/mfa": {"get": _op("Two-factor overview", (200, "Overview"), reads_body=False)},
    "/api/mfa/totp/setup": {"post": _op(f"Start authenticator app setup (the secret is shown this once; {_RECENT})",
                                        (200, "TotpSetup"), _CHANGE, 409)},
    "/api/mfa/totp/verify": {"post": _op(f"Enable the app with its first code ({_RECENT}; {_ENDS})",
                                         (200, "NewRecoveryCodes"), _CHANGE, 409, 422, body="CodeBody")},
    "/api/mfa/totp/disable": {"post": _op(f"Disable the authenticator app ({_ENDS})", (204, None), _CHANGE, 409,
                                          422, body="PasswordBody")},
    "/api/mfa/webauthn/register/options": {"post": _op(f"WebAuthn creation options (credProps asked; {_RECENT})",
                                                       (200, "CreationOptions"), _CHANGE)},
    "/api/mfa/webauthn/register": {"post": _op(f"Register a security key or passkey ({_RECENT}; {_ENDS})",
                                               (201, "Registered"), _CHANGE, 409, 422, body="RegisterBody")},
    "/api/mfa/webauthn/{id}": {
        "patch": _op("Rename a key", (200, "Key"), _CHANGE, 404, 422, body="NameBody", params=_KEY_ID),
        "delete": _op(f"Remove a key ({_RECENT}; {_ENDS})", (204, None), _CHANGE, 404, params=_KEY_ID,
                      reads_body=False),
    },
    "/api/mfa/recovery-codes/regenerate": {"post": _op("Regenerate recovery codes (voids the old ones)",
                                                       (200, "RecoveryCodes"), _CHANGE, 409, 422,
                                                       body="PasswordBody")},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Portal Account Services: two-factor (mfa)", "version": "1.0.0",
                 "description": "Signed in through the gateway, which checks the session (and CSRF) and sends "
                                "X-Portal-Identity. Errors are RFC 9457 problem details (application/problem+json). "
                                f"Request bodies are JSON objects of at most {MAX_BODY_BYTES // 1024} KiB; "
                                "an operation without one accepts an empty body."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"portalIdentity": {
                "type": "apiKey", "in": "header", "name": "X-Portal-Identity",
                "description": "the gateway's signed identity token (from profile's auth_request answer)"}},
        },
        "security": [{"portalIdentity": []}],
    }
