"""Who a request acts for: the Identity, what a user id may be, and the re-authentication window.

A leaf module (it imports nothing of mfa's but errors), so the services, the keys and the middleware
can all import it without a cycle. The token it is read from: docs/internal-api.md, "Sessions and the
gateway".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from portal_shared import tokens

from mfa_service.errors import ReauthRequired

REAUTH_WINDOW_SECONDS = 600  # the contract's "re-authenticated in the last 10 minutes"
MAX_USER_ID_BYTES = 64  # also the WebAuthn user handle limit (ceremony.MAX_USER_HANDLE_BYTES)


def valid_user_id(value: object) -> bool:
    """A user id we can store and use: a non-empty string of at most 64 UTF-8 bytes, no control characters
    (Postgres text refuses NUL) and no lone surrogates (not encodable)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return False
    return size <= MAX_USER_ID_BYTES and value.isprintable()


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    session_id: str | None
    email: str
    name: str
    role: str
    impersonator: dict[str, Any] | None
    auth_at: int
    reauth_at: int | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Identity:
        """The identity token's payload as an Identity; tokens.InvalidToken when it is not one."""
        try:
            user_id = payload["sub"]
            if not valid_user_id(user_id):
                raise ValueError("sub")
            imp = payload.get("imp")
            reauth = payload.get("reauth_at")
            return cls(
                user_id=user_id,
                session_id=payload.get("sid"),
                email=str(payload.get("email") or ""),
                name=str(payload.get("name") or ""),
                role=str(payload.get("role") or ""),
                impersonator=imp if isinstance(imp, dict) else None,
                auth_at=int(payload.get("auth_at") or 0),
                reauth_at=int(reauth) if reauth is not None else None,
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise tokens.InvalidToken("identity payload malformed") from None

    def recently_authenticated(self, now: float | None = None) -> bool:
        """max(auth_at, reauth_at) >= now - 600 (docs/internal-api.md)."""
        latest = max(self.auth_at, self.reauth_at or 0)
        return latest >= (time.time() if now is None else now) - REAUTH_WINDOW_SECONDS


def require_recent_authentication(identity: Identity, action: str) -> None:
    """403 reauth-required unless the session signed in or re-authenticated in the last 10 minutes.

    Adding a factor needs it as much as removing one: otherwise whoever holds a stolen (or unattended)
    session could enrol their own authenticator and keep the account after the password is changed.
    """
    if not identity.recently_authenticated():
        raise ReauthRequired(f"Confirm it's you (sign in again or re-authenticate) to {action}.")
