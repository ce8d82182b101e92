"""Ids are parsed at the edge: a value that is not a canonical UUID never reaches a repository."""

from __future__ import annotations

import re

# The canonical 8-4-4-4-12 text form (RFC 9562 §4), either case. uuid.UUID() also takes braces, a
# urn:uuid: prefix or no hyphens; our ids are only ever handed out in this form, so nothing else is one.
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def is_uuid(value: object) -> bool:
    """True when `value` is a string holding a UUID in canonical text form."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


# An event id as the consumers accept it: it becomes an email's Message-ID left part (RFC 5322 §3.6.4
# dot-atom) and a job id. Our producers write UUIDs; this admits any id another producer could sanely use.
_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_event_id(value: object) -> bool:
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None
