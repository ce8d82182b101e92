"""A software WebAuthn authenticator for tests: real P-256 keys, 'none' attestation, CBOR built by hand.

It produces what a browser's `PublicKeyCredential.toJSON()` gives (WebAuthn L3 §5.1.8), so py_webauthn
verifies it exactly as it verifies Chromium's virtual authenticator. Knobs let a test break one thing at
a time (origin, RP ID, signature, counter, userHandle).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    origin: str = "http://localhost:8080"
    rp_id: str = "localhost"
    discoverable: bool = True
    user_verified: bool = True
    sign_count: int = 0
    counter_step: int = 1  # 0 = a synced passkey that always reports 0
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    user_handle: bytes | None = None

    def cose_public_key(self) -> bytes:
        """COSE_Key (RFC 9053): kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y."""
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def authenticator_data(self, *, rp_id: str, attested: bool, sign_count: int) -> bytes:
        flags = FLAG_UP | (FLAG_UV if self.user_verified else 0) | (FLAG_AT if attested else 0)
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)
        if attested:
            aaguid = bytes(16)
            data += aaguid + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.cose_public_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
               ceremony: str = "webauthn.create") -> dict[str, Any]:
        """navigator.credentials.create() for `options` (py_webauthn's options_to_json, bare)."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data(ceremony, options["challenge"], origin or self.origin)
        auth_data = self.authenticator_data(rp_id=rp_id or options["rp"].get("id", self.rp_id), attested=True,
                                            sign_count=self.sign_count)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                         "transports": ["internal"]},
            "clientExtensionResults": {"credProps": {"rk": self.discoverable}},
        }

    def get(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
            user_handle: bytes | bool | None = True, bad_signature: bool = False, sign_count: int | None = None,
            ceremony: str = "webauthn.get") -> dict[str, Any]:
        """navigator.credentials.get(): signs authenticatorData || SHA-256(clientDataJSON) (WebAuthn L2 §6.3.3)."""
        if sign_count is None:
            self.sign_count += self.counter_step
            sign_count = self.sign_count
        client_data = self._client_data(ceremony, options["challenge"], origin or self.origin)
        auth_data = self.authenticator_data(rp_id=rp_id or options.get("rpId", self.rp_id), attested=False,
                                            sign_count=sign_count)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        if bad_signature:
            signature = self.key.sign(b"something else", ec.ECDSA(hashes.SHA256()))
        handle = self.user_handle if user_handle is True else (user_handle or None)
        response: dict[str, Any] = {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                                    "signature": b64url(signature)}
        if handle:
            response["userHandle"] = b64url(handle)
        return {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
                "authenticatorAttachment": "platform", "response": response, "clientExtensionResults": {}}
