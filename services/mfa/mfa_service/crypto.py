"""Encryption at rest for TOTP secrets: the shared secret box (portal_shared.secretbox, AES-256-GCM with
named keys), keyed by MFA_ENCRYPTION_KEYS."""

from __future__ import annotations

from portal_shared import secretbox
from portal_shared.secretbox import DecryptionError, Sealed

__all__ = ["SETTING", "DecryptionError", "Sealed", "SecretBox"]
SETTING = "MFA_ENCRYPTION_KEYS"


class SecretBox(secretbox.SecretBox):
    """The shared box; a bad key setting is reported by mfa's setting name."""

    @classmethod
    def from_setting(cls, setting: str, *, name: str = SETTING) -> SecretBox:
        return super().from_setting(setting, name=name)  # type: ignore[return-value]
