"""structlog set-up: JSON or console lines, each carrying the service, the bound request id and the trace id."""

from __future__ import annotations

import logging
import sys

import structlog

from portal_shared.tracing import current_ids


def configure_logging(*, service: str, level: str = "info", fmt: str = "json") -> None:
    """Route stdlib and structlog output through one renderer; contextvars carry request/correlation ids."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback)  # no local variables: they may hold secrets
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        _add_trace,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,  # services configure once, before their first log line
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our request log line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _add_service(service: str) -> structlog.types.Processor:
    def processor(_logger: object, _name: str, event: dict) -> dict:
        event.setdefault("service", service)
        return event

    return processor


def _add_trace(_logger: object, _name: str, event: dict) -> dict:
    """The current span's trace and span ids (W3C hex), beside the correlation id: a log line found by
    either leads to the trace. Without a span (tracing off) the request's bound `trace_id`, if any, stays."""
    ids = current_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event

