"""The profile service's secret box: seals SSO client secrets and PKCE verifiers at rest (AES-256-GCM)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from portal_shared.secretbox import SecretBox

from profile_service.config import Settings

SETTING = "PROFILE_ENCRYPTION_KEYS"
DERIVED_KEY_ID = "derived"


def secret_box(settings: Settings) -> SecretBox:
    """PROFILE_ENCRYPTION_KEYS when set; else one key derived from SERVICE_AUTH_KEY with HKDF (a separate
    key for a separate purpose, so no signature made with the auth key can be turned into this one)."""
    if settings.encryption_keys:
        return SecretBox.from_setting(settings.encryption_keys, name=SETTING)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"portal profile encryption at rest v1").derive(settings.service_auth_key.encode())
    return SecretBox.from_setting(f"{DERIVED_KEY_ID}:{base64.b64encode(derived).decode()}", name=SETTING)
