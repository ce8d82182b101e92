"""Keyset paging of the admin lists: `?limit=&cursor=` parsed at the edge, cursors made and read.

A cursor is the sort key of the last row of a page (base64url JSON, tagged with its list's name), so the
next page starts right after it through the list's index however deep it is, and rows inserted meanwhile
never shift a page (no OFFSET). A cursor is not a secret: it only holds values the page already showed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from profile_service.bodies import storable_text
from profile_service.errors import field_error

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR = 1024  # characters: ours are far shorter
BAD_CURSOR = "This cursor is not valid: start again from the first page."

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: tuple[Any, ...] | None  # the decoded sort key to start after; None for the first page


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_after: tuple[Any, ...] | None  # the sort key of the last item when more follow


def wanted(query: Mapping[str, str]) -> bool:
    """With `limit` or `cursor` the answer is a page; without either, the plain list as before."""
    return "limit" in query or "cursor" in query


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise field_error("limit", f"Give a whole number from 1 to {MAX_LIMIT}.")
    return int(text)


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(kind: str, raw: str, check: Callable[[list[Any]], tuple[Any, ...] | None]) -> tuple[Any, ...]:
    """The sort key in a cursor of list `kind`; `check` validates the values (None: not valid). 422 else."""
    if not raw or len(raw) > MAX_CURSOR or not raw.isascii():
        raise field_error("cursor", BAD_CURSOR)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise field_error("cursor", BAD_CURSOR) from None
    if not isinstance(decoded, list) or not decoded or decoded[0] != kind:
        raise field_error("cursor", BAD_CURSOR)
    key = check(decoded[1:])
    if key is None:
        raise field_error("cursor", BAD_CURSOR)
    return key


def page_request(query: Mapping[str, str], kind: str,
                 check: Callable[[list[Any]], tuple[Any, ...] | None]) -> PageRequest:
    cursor = query.get("cursor")
    return PageRequest(limit=parse_limit(query.get("limit")),
                       after=decode_cursor(kind, cursor, check) if cursor is not None else None)


def split(rows: list[T], limit: int, key: Callable[[T], tuple[Any, ...]]) -> Page[T]:
    """Rows fetched with LIMIT limit+1: the page, and whether (and after what) another follows."""
    items = rows[:limit]
    return Page(items, key(items[-1]) if len(rows) > limit and items else None)


def texts(values: list[Any], count: int) -> tuple[str, ...] | None:
    """`count` strings that Postgres text can hold (no NUL, no lone surrogate), else None."""
    if len(values) != count or not all(isinstance(v, str) and len(v) <= 400 and storable_text(v) for v in values):
        return None
    return tuple(values)
