"""Short signed tokens (HMAC-SHA-256) that services verify on their own: the gateway's identity header,
service-to-service calls and the "This wasn't me" links. Each token names its purpose, so a token made
for one use is refused for another.

Format: base64url(JSON payload) "." base64url(HMAC(key_for(purpose), payload)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class InvalidToken(Exception):
    """Bad signature, wrong purpose, expired or malformed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _purpose_key(key: str, purpose: str) -> bytes:
    # One setting, a distinct key per purpose (domain separation).
    return hmac.new(key.encode(), f"portal-token:{purpose}".encode(), hashlib.sha256).digest()


def sign(key: str, purpose: str, payload: dict[str, Any], *, ttl_seconds: int) -> str:
    body = {**payload, "pur": purpose, "exp": int(time.time()) + ttl_seconds}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_purpose_key(key, purpose), raw, hashlib.sha256).digest()
    return f"{_b64(raw)}.{_b64(mac)}"


def verify(key: str, purpose: str, token: str) -> dict[str, Any]:
    try:
        raw_b64, mac_b64 = token.split(".")
        raw, mac = _unb64(raw_b64), _unb64(mac_b64)
    except (ValueError, TypeError):
        raise InvalidToken("malformed token") from None
    expected = hmac.new(_purpose_key(key, purpose), raw, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidToken("bad signature")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidToken("malformed payload") from None
    if not isinstance(body, dict) or body.get("pur") != purpose:
        raise InvalidToken("wrong purpose")
    if int(body.get("exp", 0)) < time.time():
        raise InvalidToken("expired")
    return body


# Purposes used across services.
IDENTITY = "identity"          # profile (auth_request) -> gateway -> mfa: who is calling, 60 s
SERVICE_CALL = "service-call"  # profile <-> mfa internal endpoints
NOT_ME = "not-me"              # notifier email link -> profile /api/auth/not-me

IDENTITY_HEADER = "X-Portal-Identity"
SERVICE_AUTH_HEADER = "Authorization"  # "Bearer <token>"


def service_authorization(key: str, *, issuer: str, audience: str) -> dict[str, str]:
    token = sign(key, SERVICE_CALL, {"iss": issuer, "aud": audience}, ttl_seconds=60)
    return {SERVICE_AUTH_HEADER: f"Bearer {token}"}


def verify_service_call(key: str, header: str | None, *, audience: str) -> dict[str, Any]:
    if not header or not header.startswith("Bearer "):
        raise InvalidToken("missing service token")
    body = verify(key, SERVICE_CALL, header.removeprefix("Bearer "))
    if body.get("aud") != audience:
        raise InvalidToken("wrong audience")
    return body
