"""Background work is traced per run (issue #18): profile's session prune, started with the app, is a root
span of its own trace whose SQL statements are its children, not a stray root span per statement."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from portal_shared import tracing

from tests.integration.tracing.tracing_support import until_span
from tests.support.services import running_service


def _statement(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get("db.statement", "")) or span.name


async def test_a_session_prune_run_is_one_root_span_over_its_statements(
        stack_env: dict[str, str], spans: InMemorySpanExporter) -> None:
    async with running_service("profile", stack_env):
        prune = await until_span(spans, lambda s: s.name == "prune sessions")  # the loop runs once at start
        assert prune.parent is None, "a run is a trace of its own"
        assert prune.kind is SpanKind.INTERNAL and prune.status.status_code is not StatusCode.ERROR
        assert prune.instrumentation_scope is not None and prune.instrumentation_scope.name == "portal.profile"
        run = prune.context.trace_id
        children = [s for s in spans.get_finished_spans() if s.context.trace_id == run and s is not prune]
        statements = [_statement(s) for s in children]
        # sessions and SSO sign-ins: both DELETEs ran inside the run, as its direct children.
        assert sum("DELETE" in text.upper() for text in statements) >= 2, statements
        assert all(s.parent is not None and s.parent.span_id == prune.context.span_id for s in children)
        # No prune statement escaped as a root span of its own trace.
        strays = [s for s in spans.get_finished_spans() if s.parent is None and s.context.trace_id != run
                  and "DELETE" in _statement(s).upper() and "session" in _statement(s).lower()]
        assert not strays, [_statement(s) for s in strays]


async def test_background_runs_ignore_the_context_they_were_started_in(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("request"), tracing.untraced(), \
            tracing.background(tracer, "sweep", items=3) as run:
        assert run.is_recording()
        assert is_instrumentation_enabled(), "the run's statements are traced again"
    [sweep] = [s for s in spans.get_finished_spans() if s.name == "sweep"]
    [request] = [s for s in spans.get_finished_spans() if s.name == "request"]
    assert sweep.parent is None and sweep.context.trace_id != request.context.trace_id
    assert sweep.attributes == {"items": 3}
