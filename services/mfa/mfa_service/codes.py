"""Recovery code format and hashing (no I/O).

Each code is 25 symbols of Crockford base32 (125 bits from the OS CSPRNG) shown as five groups of five,
e.g. `7kq2m-x9d4t-...`. Stored only as HMAC-SHA-256 under RECOVERY_CODE_KEY (with the user id mixed in),
which with >=112-bit codes needs no slow hash: the key is not in the database, and guessing is hopeless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32: no i, l, o, u
GROUPS = 5
GROUP_LENGTH = 5
CODE_COUNT = 10
CODE_LENGTH = GROUPS * GROUP_LENGTH
# Crockford's decoding rules: letters people confuse with digits read as those digits.
_CONFUSABLE = str.maketrans({"o": "0", "i": "1", "l": "1"})


def generate_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + GROUP_LENGTH] for i in range(0, CODE_LENGTH, GROUP_LENGTH))


def generate_codes(count: int = CODE_COUNT) -> list[str]:
    return [generate_code() for _ in range(count)]


def normalise(code: str) -> str | None:
    """The canonical form (any case, dashes and spaces ignored), or None when it cannot be a code."""
    compact = "".join(ch for ch in code.lower() if ch not in "- \t").translate(_CONFUSABLE)
    if len(compact) != CODE_LENGTH or any(ch not in ALPHABET for ch in compact):
        return None
    return compact


class CodeHasher:
    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"portal-mfa-recovery-code:" + key.encode()).digest()

    def digest(self, user_id: str, code: str) -> bytes:
        """HMAC-SHA-256(key, user_id NUL normalised code). Raises ValueError for a malformed code."""
        canonical = normalise(code)
        if canonical is None:
            raise ValueError("not a recovery code")
        return hmac.new(self._key, f"{user_id}\x00{canonical}".encode(), hashlib.sha256).digest()
