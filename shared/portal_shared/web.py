"""aiohttp plumbing every service shares: request ids, problem+json errors, request metrics, JSON bodies."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from portal_shared.keys import REQUEST_ID
from portal_shared.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from portal_shared.problems import PROBLEM_CONTENT_TYPE, Problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("portal.web")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_BODY_BYTES = 64 * 1024

# A database that is down or failing over is the operator's problem, not the client's: answer 503.
_UNAVAILABLE = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    TimeoutError,
)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the gateway's, when it sent a sane one) to every log line and the response."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(12)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=request_id)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    elapsed = time.perf_counter() - started
    HTTP_REQUESTS.labels(request.method, route, str(response.status)).inc()
    HTTP_REQUEST_SECONDS.labels(request.method, route).observe(elapsed)
    if not route.startswith(("/health", "/metrics")):
        log.info("request", method=request.method, route=route, status=response.status,
                 ms=round(elapsed * 1000, 2))
    return response


@web.middleware
async def problem_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as RFC 9457 problem+json; stack traces stay in our logs."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 404:
            detail = "No such resource."
        problem = Problem(exc.status, detail, headers={k: v for k, v in exc.headers.items()
                                                       if k.lower() in {"allow", "retry-after"}})
        return problem.response()
    except _UNAVAILABLE as exc:
        log.warning("dependency_unavailable", error=type(exc).__name__)
        return Problem(503, "A service this request needs is unavailable; try again shortly.",
                       headers={"Retry-After": "5"}).response()
    except Exception:
        log.exception("unhandled_error")
        return Problem(500, "Something went wrong on our side.").response()


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body counts as {}.

    Only a body of no bytes at all: whitespace alone (a form feed, say) is not a JSON text, so it is a 400
    like any other malformed body (found by schemathesis)."""
    raw = await request.read()
    if not raw:
        return {}
    if request.content_type not in {"application/json", "application/problem+json", "application/octet-stream"}:
        raise Problem(415, "Send the body as application/json.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "The request body is not valid JSON.", kind="malformed-body") from None
    if not isinstance(body, dict):
        raise Problem(400, "The request body must be a JSON object.", kind="malformed-body")
    return body


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status,
                        content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def base_app(*, middlewares: list[Any] | None = None) -> web.Application:
    """An application with the shared middlewares first, so even their failures become problem+json."""
    return web.Application(
        middlewares=[request_context, problem_errors, *(middlewares or [])],
        client_max_size=MAX_BODY_BYTES,
    )


__all__ = ["PROBLEM_CONTENT_TYPE", "base_app", "json_response", "no_content", "read_json"]
