"""Domain errors of the mfa service and the one middleware that turns them into problem+json."""

from __future__ import annotations

from aiohttp import web
from portal_shared.problems import Problem
from portal_shared.web import Handler


class MfaError(Exception):
    """A failure the client can act on. `field` names the request field it concerns, if any."""

    status = 400
    kind: str | None = None

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class MalformedInput(MfaError):
    """A request that is not the shape the endpoint takes (internal callers: a bug on their side, not the user's)."""

    status = 400
    kind = "malformed-body"


class InvalidInput(MfaError):
    status = 422
    kind = "validation-failed"


class WrongCode(InvalidInput):
    """A TOTP code (or WebAuthn response) that does not verify."""


class WrongPassword(InvalidInput):
    pass


class Conflict(MfaError):
    status = 409
    kind = "conflict"


class NotFound(MfaError):
    status = 404
    kind = "not-found"


class ReauthRequired(MfaError):
    status = 403
    kind = "reauth-required"


class ProfileUnavailable(MfaError):
    status = 503
    kind = "service-unavailable"


def to_problem(error: MfaError) -> Problem:
    errors = {error.field: [error.detail]} if error.field and error.status in (400, 422) else None
    headers = {"Retry-After": "5"} if error.status == 503 else {}
    return Problem(error.status, error.detail, kind=error.kind, errors=errors, headers=headers)


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MfaError as error:
        return to_problem(error).response()
