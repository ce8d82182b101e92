"""Prometheus metrics of the email courier (served by the shared /metrics route)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOBS_QUEUED = Gauge("portal_notifier_jobs_queued", "Email jobs waiting to be sent (including retries)")
JOBS_FAILED = Gauge("portal_notifier_jobs_failed", "Email jobs failed for good, awaiting an operator")
OLDEST_QUEUED_SECONDS = Gauge("portal_notifier_oldest_queued_age_seconds", "Age of the oldest queued email job")
EMAILS_SENT = Counter("portal_notifier_emails_sent_total", "Emails accepted by the SMTP server", ["type"])
EMAILS_RETRIED = Counter("portal_notifier_emails_retried_total", "Send attempts deferred for a retry", ["reason"])
EMAILS_FAILED = Counter("portal_notifier_emails_failed_total", "Email jobs marked failed", ["type"])
EMAILS_EXPIRED = Counter("portal_notifier_emails_expired_total", "Jobs not sent because their link expired",
                         ["type"])
