"""Request bodies: a JSON object whose strings Postgres and UTF-8 can hold (no NUL, no lone surrogates).

JSON may carry "\\u0000" and unpaired "\\ud800" escapes; Python decodes them, but Postgres text refuses NUL
and UTF-8 cannot encode a lone surrogate, so such a value would fail deep inside a query or a hash (a 500).
They are refused up front, as a 422 on the top-level field that holds them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from portal_shared.web import read_json

from profile_service.errors import ValidationFailed

UNSTORABLE = "This contains characters that are not allowed."


def storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def storable(value: Any) -> bool:
    """True when every string in `value` (keys included, at any depth) is storable text."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return all(storable_text(k) and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v) for v in value)
    return True


async def read_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object (see portal_shared.web.read_json); unstorable strings are a 422."""
    body = await read_json(request)
    errors = {name if storable_text(name) else "body": [UNSTORABLE]
              for name, value in body.items() if not storable_text(name) or not storable(value)}
    if errors:
        raise ValidationFailed(errors)
    return body
