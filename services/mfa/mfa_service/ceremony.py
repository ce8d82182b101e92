"""WebAuthn helpers around py_webauthn: relying-party settings, challenge extraction, option building.

py_webauthn verifies a response against a challenge we pass in; it leaves challenge storage, credential
ownership and sign-count persistence to us (done in webauthn_keys.py).
"""

from __future__ import annotations

import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import base64url_to_bytes
from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

RP_NAME = "Client Portal"
CHALLENGE_SECONDS = 5 * 60
TIMEOUT_MS = CHALLENGE_SECONDS * 1000
MAX_USER_HANDLE_BYTES = 64  # WebAuthn L2 §5.4.3: user.id is at most 64 bytes


class MalformedCredential(ValueError):
    """The credential JSON is not a PublicKeyCredential.toJSON() we can read."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    rp_id: str
    origin: str  # exactly scheme://host[:port], as the browser reports it in clientDataJSON

    @classmethod
    def from_settings(cls, rp_id: str, portal_base_url: str) -> RelyingParty:
        parts = urlsplit(portal_base_url)
        return cls(rp_id=rp_id, origin=f"{parts.scheme}://{parts.netloc}")


def user_handle(user_id: str) -> bytes:
    """The WebAuthn user.id of a user: the opaque portal user id (no email or name in it)."""
    handle = user_id.encode()
    if len(handle) > MAX_USER_HANDLE_BYTES:
        raise ValueError("user id too long for a WebAuthn user handle")
    return handle


def challenge_hash(challenge: bytes) -> bytes:
    return hashlib.sha256(challenge).digest()


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedCredential(f"{what} is missing")
    try:
        return base64url_to_bytes(value)
    except (binascii.Error, ValueError):
        raise MalformedCredential(f"{what} is not base64url") from None


def challenge_of(credential: Any) -> bytes:
    """The challenge the browser signed, read from clientDataJSON (verified again by py_webauthn)."""
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise MalformedCredential("credential.response is missing")
    try:
        client_data = json.loads(_b64(credential["response"].get("clientDataJSON"), "clientDataJSON"))
    except (ValueError, UnicodeDecodeError):
        raise MalformedCredential("clientDataJSON is not JSON") from None
    if not isinstance(client_data, dict):
        raise MalformedCredential("clientDataJSON is not an object")
    return _b64(client_data.get("challenge"), "challenge")


def raw_id_of(credential: dict[str, Any]) -> bytes:
    return _b64(credential.get("rawId"), "rawId")


def user_handle_of(credential: dict[str, Any]) -> bytes | None:
    value = credential["response"].get("userHandle")
    return _b64(value, "userHandle") if value else None


def transports_of(credential: dict[str, Any]) -> list[str]:
    known = {t.value for t in AuthenticatorTransport}
    raw = credential.get("response", {}).get("transports")
    return [t for t in raw if isinstance(t, str) and t in known] if isinstance(raw, list) else []


def is_discoverable(credential: dict[str, Any]) -> bool:
    """clientExtensionResults.credProps.rk === true (WebAuthn L2 §10.4: credProps)."""
    results = credential.get("clientExtensionResults")
    props = results.get("credProps") if isinstance(results, dict) else None
    return isinstance(props, dict) and props.get("rk") is True


def descriptors(credentials: list[tuple[bytes, list[str]]]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=cid, transports=[AuthenticatorTransport(t) for t in transports] or None)
            for cid, transports in credentials]
