"""Fixtures of the tracing tests: the SDK with an in-memory exporter installed for this module's services,
and the real services around it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from portal_shared import tracing


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The global provider as `tracing.configure` installs it, exporting to memory (synchronously, so a
    finished span is there at once). Services started inside see a provider and leave it alone."""
    memory = InMemorySpanExporter()
    provider = tracing.configure("tests", processor=SimpleSpanProcessor(memory))
    assert provider is not None
    try:
        yield memory
    finally:
        provider.shutdown()
        tracing.uninstrument()
        # The API allows one global provider per process; the other test modules run without one, as
        # services do when OTEL_EXPORTER_OTLP_ENDPOINT is unset. (The SDK's own tests reset it the same way.)
        trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
        trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()
