"""OpenTelemetry for every service: the SDK from the standard OTEL_* environment, and W3C trace context helpers.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set: then the API's global provider
stays the no-op one, so every span below costs a function call and records nothing. On, spans go through a
batch processor to the OTLP/HTTP exporter, whose failures the SDK logs and drops: an exporter that is down
never reaches a request. Sampling is the SDK's own reading of `OTEL_TRACES_SAMPLER` / `..._ARG`.

What is traced and what is not recorded:
- HTTP server spans come from `portal_shared.web` (our middleware, not the aiohttp-server instrumentation,
  which records the full URL: the SSO callback's query holds an authorization code), named by route template.
- HTTP client spans (profile → mfa, SSO provider calls) from the aiohttp-client instrumentation, with the
  query string dropped from the URL for the same reason.
- SQL spans from the asyncpg instrumentation with `capture_parameters=False`: the statement text (our
  constants with `$n` placeholders) and never the values.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import yarl
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# W3C Trace Context §3.2: version 00, 32 hex trace id, 16 hex parent id, 2 hex flags.
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"instrumented": False}
TRACER = web.AppKey("tracer", trace.Tracer)  # the app's own tracer (see `tracer`), set at its start


def enabled_by(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for export (an endpoint is set and the SDK is not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def configure(service: str, *, environ: Mapping[str, str] | None = None,
              processor: SpanProcessor | None = None) -> TracerProvider | None:
    """Install the global tracer provider for `service` (once per process); None when tracing is off.

    `processor` replaces the OTLP batch export (tests pass a SimpleSpanProcessor over an in-memory exporter).
    """
    environ = os.environ if environ is None else environ
    if processor is None and not enabled_by(environ):
        return None
    provider = build_provider(service, processor=processor)
    trace.set_tracer_provider(provider)
    instrument()
    return provider


def build_provider(service: str, *, processor: SpanProcessor | None = None) -> TracerProvider:
    """A provider for `service`, not installed: the sampler and the exporter read the OTEL_* variables."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))  # sampler: OTEL_TRACES_SAMPLER
    provider.add_span_processor(processor or BatchSpanProcessor(_otlp_exporter()))
    return provider


def configure_once(service: str) -> TracerProvider | None:
    """`configure` unless an SDK provider is installed already (several apps in one process, or a test's
    own): return the provider this call installed, which its caller shuts down, else None."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    return configure(service)


def untraced() -> contextlib.AbstractContextManager[object]:
    """No instrumentation spans inside (tasks created inside inherit it): background polls are not traces."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


@contextlib.contextmanager
def background(tracer: trace.Tracer, name: str, **attributes: str | int) -> Iterator[trace.Span]:
    """The root span of one run of a service's own periodic work (a prune, a sweep): a trace of its own.

    Run in an empty context on purpose: a loop's task inherits whatever context created it, which may be a
    request's span (the run would hide inside that trace) or `untraced()` (its SQL would record nothing).
    Passing `context=` to the tracer would only choose the parent; the suppression flag would stay current.
    Inside, the instrumentations run again, so the run's statements are this span's children. An exception
    escaping the block marks the span failed (the SDK records it) and goes on up."""
    token = otel_context.attach(otel_context.Context())
    try:
        with tracer.start_as_current_span(name, kind=trace.SpanKind.INTERNAL, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)


def _otlp_exporter() -> SpanExporter:
    # Imported only when exporting: the exporter pulls in protobuf and requests.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables


def instrument() -> None:
    """Patch asyncpg and aiohttp's client (idempotent). Sessions created afterwards get client spans."""
    if _state["instrumented"]:
        return
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor(capture_parameters=False).instrument()
    AioHttpClientInstrumentor().instrument(url_filter=without_query)
    _state["instrumented"] = True


def uninstrument() -> None:
    """Undo `instrument` (tests that installed a provider for themselves)."""
    if not _state["instrumented"]:
        return
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().uninstrument()
    AioHttpClientInstrumentor().uninstrument()
    _state["instrumented"] = False


def shutdown(provider: TracerProvider | None) -> None:
    """Flush what the batch processor holds (bounded by its export timeout) and stop it."""
    if provider is not None:
        provider.shutdown()


def without_query(url: yarl.URL) -> str:
    """A URL for a span attribute: no query, no fragment, no user info (codes and tokens travel there)."""
    return str(url.with_query(None).with_fragment(None).with_user(None))


def tracer(service: str) -> trace.Tracer:
    """The tracer of our own spans; its scope name tells services apart even when they share a process."""
    return trace.get_tracer(f"portal.{service}")


def extract(carrier: Mapping[str, Any]) -> otel_context.Context:
    """The remote parent context of a W3C `traceparent` in `carrier` (HTTP or AMQP headers)."""
    value = carrier.get("traceparent")
    if not isinstance(value, str):
        return otel_context.Context()
    return _PROPAGATOR.extract({"traceparent": value})


def parent_for(traceparent: str | None, *, correlation_id: str | None = None) -> otel_context.Context:
    """The parent context of work that was queued: its stored `traceparent`, else the trace named by a
    correlation id that is a W3C trace id (the gateway makes its request id the trace id).

    With only the trace id, the span joins the request's trace under a made-up remote parent id (the real
    one was not stored), and is sampled: emails are few, and a send without its trace is worth less."""
    if traceparent and TRACEPARENT.match(traceparent):
        return extract({"traceparent": traceparent})
    if correlation_id and _TRACE_ID.match(correlation_id) and correlation_id != "0" * 32:
        parent = trace.SpanContext(trace_id=int(correlation_id, 16), span_id=random.getrandbits(64) or 1,
                                   is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        return trace.set_span_in_context(trace.NonRecordingSpan(parent), otel_context.Context())
    return otel_context.Context()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, or None when there is no valid span (tracing off)."""
    carrier: MutableMapping[str, str] = {}
    _PROPAGATOR.inject(carrier)
    value = carrier.get("traceparent")
    return value if value and TRACEPARENT.match(value) else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a valid `traceparent`, else None."""
    if traceparent and TRACEPARENT.match(traceparent):
        return traceparent[3:35]
    return None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, or None: what a log line carries."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
