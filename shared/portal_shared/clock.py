"""The one way a moment is written for clients, events and tokens: UTC ISO 8601 with a `Z` (RFC 3339)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """`moment` in UTC as ISO 8601, e.g. 2026-01-02T03:04:05.123456Z.

    Raises:
        ValueError: for a naive datetime: its zone is unknown, and guessing the host's would shift it.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("iso() needs an aware datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """The current moment, written as iso() writes it."""
    return iso(datetime.now(UTC))
