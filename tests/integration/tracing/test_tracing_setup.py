"""portal_shared.tracing's set-up (no servers): off without an endpoint, the SDK's sampler from the
standard variables, an exporter that is down costs a request nothing, and the envelope's traceparent."""

from __future__ import annotations

import socket

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from portal_shared import tracing
from portal_shared.events import PasswordResetRequested, decode, encode
from portal_shared.events.envelope import Envelope
from portal_shared.web import base_app, json_response


def test_no_endpoint_means_no_provider_and_no_op_spans() -> None:
    assert tracing.configure("profile", environ={}) is None
    assert tracing.configure("profile", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                                                 "OTEL_SDK_DISABLED": "true"}) is None
    assert not isinstance(trace.get_tracer_provider(), tracing.TracerProvider)
    with tracing.tracer("profile").start_as_current_span("x") as span:
        assert not span.is_recording()
        assert tracing.current_traceparent() is None and tracing.current_ids() is None


def test_either_endpoint_variable_turns_it_on() -> None:
    assert tracing.enabled_by({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.enabled_by({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing.enabled_by({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})


def test_the_sampler_is_the_sdks_reading_of_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
    provider = tracing.build_provider("profile")
    try:
        assert isinstance(provider.sampler, TraceIdRatioBased) and provider.sampler.rate == 0.01
        assert provider.resource.attributes["service.name"] == "profile"
    finally:
        provider.shutdown()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    provider = tracing.build_provider("mfa")
    try:
        assert isinstance(provider.sampler, ParentBased)
    finally:
        provider.shutdown()


async def test_an_exporter_that_is_down_never_reaches_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTLP/HTTP to a port nobody listens on, through the batch processor as in production."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    provider = tracing.build_provider("profile")
    app = base_app()
    app[tracing.TRACER] = provider.get_tracer("portal.profile")
    seen: list[str | None] = []

    async def handler(_request: web.Request) -> web.Response:
        seen.append(tracing.current_traceparent())
        return json_response({"ok": True})

    app.router.add_get("/api/thing", handler)
    async with TestClient(TestServer(app)) as client:
        for _ in range(20):
            response = await client.get("/api/thing")
            assert response.status == 200
    assert all(seen) and len(set(seen)) == 20, "each request was a recorded span"
    provider.force_flush(timeout_millis=2000)  # the export fails; the SDK logs and drops it
    provider.shutdown()


async def test_with_tracing_off_the_gateways_trace_id_still_reaches_the_log_lines() -> None:
    app = base_app()
    bound: list[dict[str, object]] = []

    async def handler(_request: web.Request) -> web.Response:
        bound.append(structlog.contextvars.get_contextvars())
        return json_response({})

    app.router.add_get("/api/thing", handler)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/thing", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        assert response.status == 200
        assert response.headers["X-Request-ID"] == trace_id, "without the gateway's id, the trace id serves"
    assert bound[0]["trace_id"] == trace_id and bound[0]["correlation_id"] == trace_id


def test_the_envelope_carries_a_traceparent_only_when_well_formed() -> None:
    event = PasswordResetRequested(user_id="u", email="a@b.example", reset_url="https://x/?token=t",
                                   expires_at="2026-12-03T12:00:00Z")
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert decode(encode(Envelope.wrap(event, source="profile", traceparent=good))).traceparent == good
    plain = Envelope.wrap(event, source="profile")
    assert "traceparent" not in plain.to_dict(), "old consumers see the envelope they knew"
    for bad in ("00-xyz", good.upper(), 5, None):
        body = {**Envelope.wrap(event, source="profile").to_dict(), "traceparent": bad}
        assert decode(body).traceparent is None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
