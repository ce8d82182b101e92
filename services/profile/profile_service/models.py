"""The profile service's records as plain dataclasses (what the repositories return)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

CLIENT_USER = "client_user"
MSP_ADMIN = "msp_admin"

SIGNED_IN = "signed_in"
SECOND_FACTOR_REQUIRED = "second_factor_required"
VOID = "void"  # a pending sign-in that used up its second-factor attempts


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: str
    client: Client | None
    title: str | None
    mobile: str | None
    phone: str | None
    password_hash: str | None
    two_factor_enabled: bool
    failed_attempts: int
    locked_until: datetime | None
    created_at: datetime
    active: bool = True  # False once an MSP admin deactivates the account (offboarding): no sign-in of any kind
    second_factors: list[str] | None = None  # what mfa last said a sign-in may use (second_factors.offered)
    second_factors_epoch: int = 0  # changes of the account's factors seen, which void that answer
    quiet_next_sign_in: bool = False  # the next sign-in follows a password set through an emailed link

    @property
    def is_admin(self) -> bool:
        return self.role == MSP_ADMIN

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass(frozen=True, slots=True)
class Session:
    """A server-side session joined with its user (and the impersonated user, when there is one)."""

    id_hash: bytes
    public_id: str
    state: str
    user: User
    impersonated: User | None
    impersonation_reason: str | None
    second_factor_failures: int
    webauthn_challenge_id: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    auth_at: datetime
    reauth_at: datetime | None
    user_agent: str
    ip: str
    method: str = ""  # how it signed in: password, passkey, sso (+ the second factor once completed)

    @property
    def effective_user(self) -> User:
        """Whose account the session views: the impersonated user while an admin impersonates."""
        return self.impersonated or self.user

    @property
    def impersonator(self) -> User | None:
        return self.user if self.impersonated else None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    type: str
    ip: str
    detail: str
