"""Helpers of the tracing tests: waiting for a span, and the trace tree of a run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import quote, quote_plus

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


async def until_span(exporter: InMemorySpanExporter, found: Callable[[ReadableSpan], bool],
                     within: float = 15.0) -> ReadableSpan:
    """The first finished span for which `found` holds, waiting for it (spans end after their effects)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        match = next((s for s in exporter.get_finished_spans() if found(s)), None)
        if match is not None:
            return match
        assert loop.time() < deadline, "span never finished: " + ", ".join(
            s.name for s in exporter.get_finished_spans())
        await asyncio.sleep(0.05)


def attribute_text(spans: list[ReadableSpan]) -> str:
    """Everything a span carries as text: names, attributes, events, links, status, resource."""
    parts: list[str] = []
    for span in spans:
        parts += [span.name, str(span.status.description or "")]
        parts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
        parts += [f"{k}={v}" for k, v in span.resource.attributes.items()]
        for event in span.events:
            parts += [event.name, *(f"{k}={v}" for k, v in (event.attributes or {}).items())]
        for link in span.links:
            parts += [f"{k}={v}" for k, v in (link.attributes or {}).items()]
    return "\n".join(parts)


def assert_no_secrets(spans: list[ReadableSpan], secrets: list[str]) -> None:
    """No secret (nor its URL-encoded or lower-cased form) anywhere in the spans."""
    text = attribute_text(spans)
    lowered = text.lower()
    for secret in secrets:
        assert secret, "an empty secret would match everything"
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            assert form not in text and form.lower() not in lowered, f"a span carries {secret[:4]}…"
