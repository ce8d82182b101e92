"""Domain errors of the profile service; one middleware turns them into RFC 9457 problem details."""

from __future__ import annotations

from aiohttp import web
from portal_shared.problems import Problem
from portal_shared.web import Handler

from profile_service.mfa_client import MfaUnavailable


class DomainError(Exception):
    status = 400
    kind: str | None = None
    detail = "The request cannot be done."

    def __init__(self, detail: str | None = None, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail:
            self.detail = detail
        self.errors = errors

    def problem(self) -> Problem:
        return Problem(self.status, self.detail, kind=self.kind, errors=self.errors)


class BadCredentials(DomainError):
    """Wrong email or password, unknown account, throttled or locked account: all alike by design."""
    status, kind, detail = 401, "invalid-credentials", "The email address or password is incorrect."


class SecondFactorFailed(DomainError):
    status, kind, detail = 401, "invalid-second-factor", "That code or key was not accepted."


class SignInExpired(DomainError):
    status, kind, detail = 401, "sign-in-expired", "This sign-in has expired; sign in again."


class NotSignedIn(DomainError):
    status, kind, detail = 401, "not-signed-in", "Sign in to continue."


class Forbidden(DomainError):
    status, kind, detail = 403, "forbidden", "You are not allowed to do this."


class ImpersonationForbidden(DomainError):
    status, kind = 403, "impersonation-forbidden"
    detail = "Not while viewing another user's account; use the admin actions instead."


class ReauthRequired(DomainError):
    status, kind = 403, "reauth-required"
    detail = "Confirm it's you: re-authenticate (password, code or key), then try again."


class NotFound(DomainError):
    status, kind, detail = 404, "not-found", "No such resource."


class Conflict(DomainError):
    status, kind, detail = 409, "conflict", "This conflicts with the current state."


class InvalidResetToken(DomainError):
    status, kind, detail = 400, "invalid-reset-token", "This link is invalid, used or expired; request a new one."


class InvalidLink(DomainError):
    status, kind, detail = 400, "invalid-link", "This link is invalid, used or expired."


class ValidationFailed(DomainError):
    status, kind = 422, "validation-failed"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(next(iter(errors.values()))[0], errors=errors)


def field_error(name: str, message: str) -> ValidationFailed:
    return ValidationFailed({name: [message]})


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return exc.problem().response()
    except MfaUnavailable:
        return Problem(503, "Two-factor checks are unavailable; try again shortly.",
                       headers={"Retry-After": "5"}).response()
