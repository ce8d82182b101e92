"""The event catalogue of the contract: each event a frozen dataclass with its type and version.

Events are past-tense facts. `data` on the wire is exactly the dataclass's fields; unknown fields in
received data are ignored so producers can add fields without breaking consumers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    type: ClassVar[str]
    version: ClassVar[int] = 1
    user_id: str


@dataclass(frozen=True, slots=True)
class UserCreated(Event):
    type: ClassVar[str] = "profile.user_created"
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class UserUpdated(Event):
    type: ClassVar[str] = "profile.user_updated"
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class UserInvited(Event):
    type: ClassVar[str] = "profile.user_invited"
    email: str
    name: str
    set_password_url: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class PasswordResetRequested(Event):
    """A reset link was mailed; or, for an account whose client signs in with SSO only (`sso_issuer` set,
    `reset_url` empty, beyond the contract's fields), a note that the company's sign-in is the way in."""
    type: ClassVar[str] = "profile.password_reset_requested"
    email: str
    reset_url: str
    expires_at: str
    sso_issuer: str | None = None


@dataclass(frozen=True, slots=True)
class PasswordChanged(Event):
    type: ClassVar[str] = "profile.password_changed"
    method: str  # "change" or "reset"


@dataclass(frozen=True, slots=True)
class ImpersonationStarted(Event):
    type: ClassVar[str] = "profile.impersonation_started"
    admin_id: str
    admin_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class TwoFactorEnabled(Event):
    type: ClassVar[str] = "mfa.two_factor_enabled"
    method: str  # "totp" or "webauthn"
    key_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TwoFactorDisabled(Event):
    type: ClassVar[str] = "mfa.two_factor_disabled"
    method: str
    key_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TotpEnabled(Event):
    type: ClassVar[str] = "mfa.totp_enabled"


@dataclass(frozen=True, slots=True)
class TotpDisabled(Event):
    type: ClassVar[str] = "mfa.totp_disabled"


@dataclass(frozen=True, slots=True)
class SecurityKeyAdded(Event):
    type: ClassVar[str] = "mfa.security_key_added"
    key_id: str
    name: str


@dataclass(frozen=True, slots=True)
class SecurityKeyRemoved(Event):
    type: ClassVar[str] = "mfa.security_key_removed"
    key_id: str
    name: str


@dataclass(frozen=True, slots=True)
class SecurityKeyRenamed(Event):
    """A key's name changed (beyond the contract's table: the user's activity shows every factor change)."""
    type: ClassVar[str] = "mfa.security_key_renamed"
    key_id: str
    name: str
    old_name: str


@dataclass(frozen=True, slots=True)
class RecoveryCodesRegenerated(Event):
    type: ClassVar[str] = "mfa.recovery_codes_regenerated"
    count: int


@dataclass(frozen=True, slots=True)
class RecoveryCodeUsed(Event):
    type: ClassVar[str] = "mfa.recovery_code_used"
    remaining: int


@dataclass(frozen=True, slots=True)
class MfaResetByAdmin(Event):
    type: ClassVar[str] = "mfa.reset_by_admin"
    admin_id: str


@dataclass(frozen=True, slots=True)
class EmailChanged(Event):
    """The sign-in address changed; emailed to both addresses (the old one with a "This wasn't me" link)."""
    type: ClassVar[str] = "profile.email_changed"
    old_email: str
    new_email: str


@dataclass(frozen=True, slots=True)
class ChangeUndone(Event):
    """A "This wasn't me" link undid the change its email reported (`undone_event_id` names that event).

    `two_factor_disabled` (beyond the contract's fields) is true when the undo removed the account's last
    second factor, so the email can say that two-factor is now off."""
    type: ClassVar[str] = "profile.change_undone"
    undone_event_id: str
    undone_type: str
    two_factor_disabled: bool = False


@dataclass(frozen=True, slots=True)
class SsoLinked(Event):
    """The account's first single sign-on linked a provider identity to it (`issuer` names the provider)."""
    type: ClassVar[str] = "profile.sso_linked"
    issuer: str


@dataclass(frozen=True, slots=True)
class NewDeviceSignIn(Event):
    """A sign-in completed in a browser that was not a known device of the account."""
    type: ClassVar[str] = "profile.new_device_sign_in"
    session_id: str
    ip: str
    user_agent: str


ALL_EVENTS: tuple[type[Event], ...] = (
    UserCreated, UserUpdated, UserInvited, PasswordResetRequested, PasswordChanged, ImpersonationStarted,
    TwoFactorEnabled, TwoFactorDisabled, TotpEnabled, TotpDisabled, SecurityKeyAdded, SecurityKeyRemoved,
    SecurityKeyRenamed,
    RecoveryCodesRegenerated, RecoveryCodeUsed, MfaResetByAdmin, EmailChanged, ChangeUndone, SsoLinked,
    NewDeviceSignIn,
)

# Data fields whose value is a usable secret: a link carrying a single-use token (reset, invitation).
# Once an event is delivered no stored copy needs them: the relay drops them from the outbox row it
# marks sent, and the consumer from a message it dead-letters.
SECRET_DATA_FIELDS: tuple[str, ...] = ("reset_url", "set_password_url")

# The one place that maps (type, version) to a class.
REGISTRY: dict[tuple[str, int], type[Event]] = {(cls.type, cls.version): cls for cls in ALL_EVENTS}

__all__ = [cls.__name__ for cls in ALL_EVENTS] + ["ALL_EVENTS", "REGISTRY", "SECRET_DATA_FIELDS", "Event"]
