"""The mfa service's own failure kinds; the shared family and its middleware are portal_shared.errors."""

from __future__ import annotations

from portal_shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unavailable,
    ValidationFailed,
    domain_errors,
    field_error,
)

__all__ = ["Conflict", "DomainError", "Forbidden", "ImpersonationForbidden", "MalformedInput", "NotFound",
           "NotSignedIn", "ProfileUnavailable", "ReauthRequired", "ServiceAuthRequired", "ValidationFailed",
           "domain_errors", "field_error"]


class MalformedInput(DomainError):
    """A request that is not the shape the endpoint takes (internal callers: a bug on their side, not the user's)."""

    status, kind, detail = 400, "malformed-body", "The request is not the shape this endpoint takes."


class NotSignedIn(DomainError):
    """No valid X-Portal-Identity on /api/mfa*: the gateway did not vouch for a signed-in session."""

    status, kind, detail = 401, "not-signed-in", "Sign in to manage two-factor authentication."


class ServiceAuthRequired(DomainError):
    """No valid service token (audience `mfa`) on /internal/*."""

    status, kind, detail = 401, "service-auth-required", "A valid service token is required."


class ImpersonationForbidden(Forbidden):
    kind = "impersonation-forbidden"
    detail = "Two-factor settings cannot be changed while an administrator views this account."


class ReauthRequired(Forbidden):
    """The change needs a sign-in or re-authentication in the last 10 minutes (principal.REAUTH_WINDOW_SECONDS)."""

    kind = "reauth-required"
    detail = "Confirm it's you (sign in again or re-authenticate) to make this change."


class ProfileUnavailable(Unavailable):
    """Profile did not confirm a call mfa must not guess about (password check, latch, ending sessions)."""

    detail = "The profile service cannot answer right now; try again shortly."
