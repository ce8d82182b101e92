"""Prometheus metrics shared by every service; one process runs one service, so module-level is right."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("portal_http_requests_total", "HTTP requests served", ["method", "route", "status"])
HTTP_REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

OUTBOX_UNSENT = Gauge("portal_outbox_unsent", "Outbox rows not yet confirmed by the broker")
OUTBOX_LAG_SECONDS = Gauge("portal_outbox_lag_seconds", "Age of the oldest unsent outbox row")
OUTBOX_PUBLISHED = Counter("portal_outbox_published_total", "Events published and confirmed", ["type"])
# reason: unroutable (returned: no queue bound), nacked (broker refused), broker_unavailable.
OUTBOX_PUBLISH_FAILURES = Counter(
    "portal_outbox_publish_failures_total", "Publishes not confirmed (nack, return, broker down)", ["reason"])
OUTBOX_PRUNED = Counter("portal_outbox_pruned_total", "Published outbox rows deleted after the retention period")
INBOX_PRUNED = Counter("portal_inbox_pruned_total", "Processed-message inbox rows deleted after the retention period")

CONSUMED = Counter("portal_events_consumed_total", "Events handled and acknowledged", ["type"])
DUPLICATES_SKIPPED = Counter("portal_events_duplicates_total", "Redelivered events skipped by the inbox", ["type"])
# reason: malformed, permanent, delivery_limit.
DEAD_LETTERED = Counter("portal_events_dead_lettered_total", "Events rejected to the dead-letter queue", ["reason"])
RETRIED = Counter("portal_events_retried_total", "Events sent back for a delayed retry", ["type"])
