"""Encryption at rest for stored secrets (TOTP secrets, SSO client secrets): AES-256-GCM with named keys.

A key setting (MFA_ENCRYPTION_KEYS, PROFILE_ENCRYPTION_KEYS) is `kid:base64(32 bytes)[,kid:base64(32 bytes)...]`:
the first key encrypts, every listed key decrypts. Rotation = put a new key first and keep the old ones
until no row names them.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal_shared.config import SettingsError

NONCE_BYTES = 12  # the 96-bit nonce NIST SP 800-38D recommends for GCM


class DecryptionError(Exception):
    """Unknown key id, or the ciphertext/associated data was altered."""


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    blob: bytes  # nonce || ciphertext || tag


class SecretBox:
    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current

    @classmethod
    def from_setting(cls, setting: str, *, name: str) -> SecretBox:
        """Parse a key setting called `name`; raises SettingsError naming the problem (never the key)."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for item in (part.strip() for part in setting.split(",")):
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            if not sep or not kid:
                raise SettingsError(f"{name} entries must look like kid:base64key")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise SettingsError(f"{name} key {kid!r} is not base64") from None
            if len(key) != 32:
                raise SettingsError(f"{name} key {kid!r} must be 32 bytes")
            if kid in keys:
                raise SettingsError(f"{name} names {kid!r} twice")
            keys[kid] = key
            order.append(kid)
        if not order:
            raise SettingsError(f"{name} has no key")
        return cls(keys, order[0])

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> Sealed:
        """Encrypt with the current key. `associated_data` binds the ciphertext to its owner (a user or
        client id), so a sealed value copied to another row does not decrypt."""
        nonce = os.urandom(NONCE_BYTES)
        blob = nonce + self._keys[self.current].encrypt(nonce, plaintext, associated_data)
        return Sealed(self.current, blob)

    def decrypt(self, sealed: Sealed, *, associated_data: bytes) -> bytes:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise DecryptionError(f"no key {sealed.key_id!r} configured")
        try:
            return aead.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise DecryptionError("ciphertext or associated data altered") from None
