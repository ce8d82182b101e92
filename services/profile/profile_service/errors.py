"""The profile service's own failure kinds; the shared family and middleware are portal_shared.errors."""

from __future__ import annotations

from portal_shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    ValidationFailed,
    domain_errors,
    field_error,
)

__all__ = ["BadCredentials", "Conflict", "DomainError", "Forbidden", "ImpersonationForbidden", "InvalidLink",
           "InvalidResetToken", "NotFound", "NotSignedIn", "ReauthRequired", "SecondFactorFailed",
           "SignInExpired", "ValidationFailed", "domain_errors", "field_error"]


class BadCredentials(DomainError):
    """Wrong email or password, unknown account, throttled or locked account: all alike by design."""
    status, kind, detail = 401, "invalid-credentials", "The email address or password is incorrect."


class SecondFactorFailed(DomainError):
    status, kind, detail = 401, "invalid-second-factor", "That code or key was not accepted."


class SignInExpired(DomainError):
    status, kind, detail = 401, "sign-in-expired", "This sign-in has expired; sign in again."


class NotSignedIn(DomainError):
    status, kind, detail = 401, "not-signed-in", "Sign in to continue."


class ImpersonationForbidden(DomainError):
    status, kind = 403, "impersonation-forbidden"
    detail = "Not while viewing another user's account; use the admin actions instead."


class ReauthRequired(DomainError):
    status, kind = 403, "reauth-required"
    detail = "Confirm it's you: re-authenticate (password, code or key), then try again."


class InvalidResetToken(DomainError):
    status, kind, detail = 400, "invalid-reset-token", "This link is invalid, used or expired; request a new one."


class InvalidLink(DomainError):
    status, kind, detail = 400, "invalid-link", "This link is invalid, used or expired."
