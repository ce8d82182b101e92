"""Domain errors: the one exception family services raise, and the one middleware that answers them.

A `DomainError` subclass names a failure the client can act on (status, problem kind, default message);
`domain_errors` turns any of them into RFC 9457 problem+json (portal_shared.problems.Problem). Subclass
per service for its own kinds, e.g.

    class MfaUnavailable(ServiceUnavailable):
        detail = "Two-factor checks are unavailable; try again shortly."
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from portal_shared.problems import Problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DomainError(Exception):
    """A failure the client can act on. Class attributes give the defaults; `detail` may be overridden per raise.

    `field` names the request field the failure concerns: with it, the problem carries
    `errors={field: [detail]}` (RFC 9457 extension member, as the contract's validation errors do).
    """

    status: int = 400
    kind: str | None = None
    detail: str = "The request cannot be done."
    retry_after: int | None = None  # seconds; sent as Retry-After (RFC 9110 §10.2.3) when set

    def __init__(self, detail: str | None = None, *, errors: dict[str, list[str]] | None = None,
                 field: str | None = None) -> None:
        if detail:
            self.detail = detail
        super().__init__(self.detail)
        self.field = field
        self.errors = errors if errors is not None or field is None else {field: [self.detail]}

    def problem(self) -> Problem:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return Problem(self.status, self.detail, kind=self.kind, errors=self.errors, headers=headers)


class ValidationFailed(DomainError):
    """422: the body is well-formed but a field's value is not acceptable; `errors` names each field."""

    status, kind, detail = 422, "validation-failed", "A field is not valid."

    def __init__(self, errors: dict[str, list[str]]) -> None:
        if not errors or not all(errors.values()):
            raise ValueError("ValidationFailed needs at least one field with a message")
        super().__init__(next(iter(errors.values()))[0], errors=errors)


def field_error(name: str, message: str) -> ValidationFailed:
    """422 naming one field."""
    return ValidationFailed({name: [message]})


class Forbidden(DomainError):
    status, kind, detail = 403, "forbidden", "You are not allowed to do this."


class NotFound(DomainError):
    status, kind, detail = 404, "not-found", "No such resource."


class Conflict(DomainError):
    status, kind, detail = 409, "conflict", "This conflicts with the current state."


class Unavailable(DomainError):
    """503: something this request needs is down; the client may retry shortly (fail closed, never guess)."""

    status, kind, retry_after = 503, "service-unavailable", 5
    detail = "A service this request needs is unavailable; try again shortly."


@web.middleware
async def domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any DomainError a handler (or a service below it) raises leaves as problem+json."""
    try:
        return await handler(request)
    except DomainError as error:
        return error.problem().response()


__all__ = ["Conflict", "DomainError", "Forbidden", "NotFound", "Unavailable", "ValidationFailed",
           "domain_errors", "field_error"]
