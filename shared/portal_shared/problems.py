"""RFC 9457 problem details: the one error type handlers raise and the one shape clients get."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PROBLEM_BASE = "https://portal.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
}


@dataclass
class Problem(Exception):
    """An error a client can act on. `kind` becomes the last segment of the problem type URI."""

    status: int
    detail: str
    kind: str | None = None
    errors: dict[str, list[str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + (self.kind or _slug(_TITLES.get(self.status, "error")))

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return body

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.body()),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-")

