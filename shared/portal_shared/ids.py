"""Ids are parsed at the edge: a value that is not a canonical UUID never reaches a repository."""

from __future__ import annotations

import re

# The canonical 8-4-4-4-12 text form (RFC 9562 §4), either case. uuid.UUID() also takes braces, a
# urn:uuid: prefix or no hyphens; our ids are only ever handed out in this form, so nothing else is one.
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def is_uuid(value: object) -> bool:
    """True when `value` is a string holding a UUID in canonical text form."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None
