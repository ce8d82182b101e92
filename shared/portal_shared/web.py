"""aiohttp plumbing every service shares: request ids, problem+json errors, request metrics, JSON bodies."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from portal_shared import actor, tracing
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
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a write reached a primary demoted by a failover
    TimeoutError,
)


@web.middleware
async def no_store(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`Cache-Control: no-store` on every API answer, errors and redirects included.

    API answers carry personal data or secrets (profile, sessions, TOTP setup, recovery codes, admin
    views), and a shared or browser cache must never keep one. Set here once, outermost, so no handler
    (and no error path) can forget it; nothing under /api/ or /internal/ is worth caching."""
    if not request.path.startswith(_NO_STORE_PREFIXES) and request.path != "/api":
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect (e.g. the SSO callback) raised past problem_errors
        exc.headers["Cache-Control"] = "no-store"
        raise
    response.headers["Cache-Control"] = "no-store"
    return response


_NO_STORE_PREFIXES = ("/api/", "/internal/")


_UNTRACED = ("/health", "/metrics")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the gateway's, when it sent a sane one) to every log line and the response, and
    the request's actor (address, browser) for the events it emits; one SERVER span per request, the child
    of the gateway's W3C `traceparent` when it sent one."""
    incoming = request.headers.get("X-Request-ID", "")
    trace_id = tracing.trace_id_of(request.headers.get("traceparent"))
    # Without the gateway's id, the caller's trace id serves: the correlation id then names the trace.
    request_id = incoming if _REQUEST_ID.match(incoming) else trace_id or secrets.token_hex(12)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=request_id)
    actor.bind(actor.of_request(request))  # aiohttp runs each request in its own task: its own context
    request[REQUEST_ID] = request_id
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    if route.startswith(_UNTRACED):
        tracer: trace.Tracer = trace.NoOpTracer()  # probes and scrapes every few seconds: noise, not traces
    else:
        tracer = request.app.get(tracing.TRACER) or trace.get_tracer("portal")
    # Attributes: method and route template only. Never the URL: paths and queries may carry ids and codes.
    with tracer.start_as_current_span(
            f"{request.method} {route}", context=tracing.extract(request.headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
            record_exception=False, set_status_on_exception=False) as span:
        # Bound for the request's log lines whether or not tracing is on (off, the span is the gateway's
        # context, unrecorded): the trace id and the correlation id side by side.
        span_context = span.get_span_context()
        if span_context.is_valid:
            structlog.contextvars.bind_contextvars(trace_id=format(span_context.trace_id, "032x"))
        elif trace_id is not None:
            structlog.contextvars.bind_contextvars(trace_id=trace_id)
        started = time.perf_counter()
        # A request the sampler dropped runs with the instrumentations suppressed: their spans would be
        # dropped too (same trace id, same decision), but building each one — the statement's attributes,
        # a context switch per SQL call — cost a third of GET /api/profile. The trace context still goes
        # on: the service client sends the traceparent itself, and the outbox stores it.
        try:
            with contextlib.nullcontext() if span.is_recording() else tracing.untraced():
                response = await handler(request)
        except web.HTTPException as exc:  # a redirect raised past problem_errors
            span.set_attribute("http.response.status_code", exc.status)
            raise
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))  # never the message: it may quote data
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    response.headers["X-Request-ID"] = request_id
    elapsed = time.perf_counter() - started
    HTTP_REQUESTS.labels(request.method, route, str(response.status)).inc()
    HTTP_REQUEST_SECONDS.labels(request.method, route).observe(elapsed)
    if not route.startswith(_UNTRACED):
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


# Deeper than any body of the contract (a WebAuthn credential is 4 levels). Python's parser would take
# ~1,000 levels and then fail with RecursionError (a 500); and code that walks a parsed body recursively
# (validation, storability checks) would fail the same way on a body just under that.
MAX_JSON_DEPTH = 32
_EMPTY_BODY = "This request needs a JSON object as its body."


async def read_json(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body counts as {} unless `required`.

    Only a body of no bytes at all: whitespace alone (a form feed, say) is not a JSON text, so it is a 400
    like any other malformed body (found by schemathesis). `required` is for the operations whose contract
    body is an object (PATCH/PUT): no bytes at all is then a 400 too; `{}` is still an (empty) object.
    Endpoints whose contract body is "–" keep the default and accept no body.

    Raises:
        Problem: 400 malformed-body (not JSON, not an object, nested deeper than MAX_JSON_DEPTH, or
            empty when required), 415 for another content type.
    """
    raw = await request.read()
    if not raw:
        if required:
            raise Problem(400, _EMPTY_BODY, kind="malformed-body")
        return {}
    if request.content_type not in {"application/json", "application/problem+json", "application/octet-stream"}:
        raise Problem(415, "Send the body as application/json.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "The request body is not valid JSON.", kind="malformed-body") from None
    except RecursionError:  # e.g. 64 KB of "[": deeper than the parser can go
        raise Problem(400, f"The request body is nested deeper than {MAX_JSON_DEPTH} levels.",
                      kind="malformed-body") from None
    if not isinstance(body, dict):
        raise Problem(400, "The request body must be a JSON object.", kind="malformed-body")
    if _depth_exceeds(body, MAX_JSON_DEPTH):
        raise Problem(400, f"The request body is nested deeper than {MAX_JSON_DEPTH} levels.",
                      kind="malformed-body")
    return body


async def require_body(request: web.Request) -> None:
    """400 malformed-body when the request has no body at all (for PATCH/PUT whose body is an object)."""
    if not await request.read():  # aiohttp keeps the bytes: a read_json afterwards sees them again
        raise Problem(400, _EMPTY_BODY, kind="malformed-body")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when containers in `value` nest more than `limit` deep (iterative: no recursion to overflow)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status,
                        content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def base_app(*, middlewares: list[Any] | None = None) -> web.Application:
    """An application with the shared middlewares first, so even their failures become problem+json."""
    return web.Application(
        middlewares=[no_store, request_context, problem_errors, *(middlewares or [])],
        client_max_size=MAX_BODY_BYTES,
    )


__all__ = ["MAX_JSON_DEPTH", "PROBLEM_CONTENT_TYPE", "base_app", "json_response", "no_content", "read_json",
           "require_body"]
