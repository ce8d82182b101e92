"""AES-GCM at rest: round trip, key ids, rotation, tampering, settings parsing."""

from __future__ import annotations

import base64
import os

import pytest
from mfa_service.crypto import DecryptionError, Sealed, SecretBox
from portal_shared.config import SettingsError


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_round_trip_with_the_current_key_id() -> None:
    box = SecretBox.from_setting(f"k1:{key()}")
    sealed = box.encrypt(b"JBSWY3DPEHPK3PXP", associated_data=b"user-1")
    assert sealed.key_id == "k1"
    assert b"JBSWY3DPEHPK3PXP" not in sealed.blob
    assert box.decrypt(sealed, associated_data=b"user-1") == b"JBSWY3DPEHPK3PXP"
    assert box.encrypt(b"same", associated_data=b"u").blob != box.encrypt(b"same", associated_data=b"u").blob


def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old, new = key(), key()
    before = SecretBox.from_setting(f"k1:{old}")
    sealed_old = before.encrypt(b"secret", associated_data=b"u")
    after = SecretBox.from_setting(f"k2:{new}, k1:{old}")
    assert after.decrypt(sealed_old, associated_data=b"u") == b"secret"
    sealed_new = after.encrypt(b"secret", associated_data=b"u")
    assert sealed_new.key_id == "k2"
    with pytest.raises(DecryptionError):
        before.decrypt(sealed_new, associated_data=b"u")  # k2 unknown to the old configuration
    with pytest.raises(DecryptionError):
        SecretBox.from_setting(f"k2:{new}").decrypt(sealed_old, associated_data=b"u")  # k1 dropped too early


def test_tampering_or_another_users_row_fails() -> None:
    box = SecretBox.from_setting(f"k1:{key()}")
    sealed = box.encrypt(b"secret", associated_data=b"user-1")
    with pytest.raises(DecryptionError):
        box.decrypt(sealed, associated_data=b"user-2")
    flipped = bytes([sealed.blob[0]]) + bytes([sealed.blob[1] ^ 1]) + sealed.blob[2:]
    with pytest.raises(DecryptionError):
        box.decrypt(Sealed("k1", flipped), associated_data=b"user-1")


@pytest.mark.parametrize("setting", [
    "", "nokey", ":abc", "k1:not base64!", f"k1:{base64.b64encode(b'short').decode()}", "k1:{k},k1:{k}",
])
def test_bad_settings_fail_fast(setting: str) -> None:
    with pytest.raises(SettingsError):
        SecretBox.from_setting(setting.replace("{k}", key()))
