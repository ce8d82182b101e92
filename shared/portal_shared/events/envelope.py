"""The wire format: `{id, type, version, occurred_at, source, correlation_id, data}` as JSON, plus an
optional `actor: {ip, user_agent}` (who caused the event, when a request did) and an optional `traceparent`
(W3C Trace Context of the span that wrote the event, when traced) that consumers may ignore."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from portal_shared.actor import MAX_USER_AGENT, Actor
from portal_shared.clock import now_iso
from portal_shared.events.contracts import REGISTRY, Event

# W3C Trace Context §3.2 (version 00); anything else is dropped, never a reason to refuse the event.
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class UnknownEventError(ValueError):
    """The message is malformed, or names a type/version this code does not know."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    version: int
    occurred_at: str
    source: str
    correlation_id: str
    event: Event
    actor: Actor | None = None
    traceparent: str | None = None

    @classmethod
    def wrap(cls, event: Event, *, source: str, correlation_id: str | None = None,
             actor: Actor | None = None, traceparent: str | None = None) -> Envelope:
        event_id = str(uuid.uuid4())
        return cls(
            id=event_id,
            type=event.type,
            version=event.version,
            occurred_at=now_iso(),
            source=source,
            correlation_id=correlation_id or event_id,
            event=event,
            actor=actor,
            traceparent=traceparent,
        )

    def to_dict(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "source": self.source,
            "correlation_id": self.correlation_id,
            "data": dataclasses.asdict(self.event),
        }
        if self.actor is not None:
            body["actor"] = self.actor.to_dict()
        if self.traceparent is not None:
            body["traceparent"] = self.traceparent
        return body


def encode(envelope: Envelope) -> bytes:
    """The message body: compact JSON, UTF-8."""
    return json.dumps(envelope.to_dict(), separators=(",", ":")).encode()


def decode(body: bytes | str | dict[str, Any]) -> Envelope:
    """Parse and validate a message body. Raises UnknownEventError for anything we cannot trust."""
    try:
        raw = body if isinstance(body, dict) else json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UnknownEventError(f"body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UnknownEventError("body is not a JSON object")
    event_type, version = raw.get("type"), raw.get("version")
    if not isinstance(event_type, str) or not isinstance(version, int) or isinstance(version, bool):
        raise UnknownEventError("type (a string) or version (an integer) missing")
    key = (event_type, version)
    cls = REGISTRY.get(key)
    if cls is None:
        raise UnknownEventError(f"unknown event {key[0]} v{key[1]}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise UnknownEventError("data is not an object")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        event = cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise UnknownEventError(f"{key[0]} data does not match its contract: {exc}") from None
    for f in dataclasses.fields(cls):
        value = getattr(event, f.name)
        if value is not None and f.type in ("str", "str | None") and not isinstance(value, str):
            raise UnknownEventError(f"{key[0]}.{f.name} must be a string")
        if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
            raise UnknownEventError(f"{key[0]}.{f.name} must be an integer")
    event_id, occurred_at = raw.get("id"), raw.get("occurred_at")
    # The id is the AMQP message_id and the inbox key: without it a message cannot be deduplicated.
    if not isinstance(event_id, str) or not event_id:
        raise UnknownEventError("envelope id missing or not a string")
    if not isinstance(occurred_at, str) or not occurred_at:
        raise UnknownEventError("envelope occurred_at missing or not a string")
    return Envelope(
        id=event_id, type=key[0], version=key[1], occurred_at=occurred_at,
        source=str(raw.get("source") or ""), correlation_id=str(raw.get("correlation_id") or event_id),
        event=event, actor=_actor(raw.get("actor")), traceparent=_traceparent(raw.get("traceparent")),
    )


def _traceparent(value: object) -> str | None:
    return value if isinstance(value, str) and _TRACEPARENT.match(value) else None


def _actor(value: object) -> Actor | None:
    """The optional actor; anything malformed is dropped (it is informative, never a reason to refuse)."""
    if not isinstance(value, dict):
        return None
    ip, user_agent = value.get("ip"), value.get("user_agent")
    if not isinstance(ip, str) or not isinstance(user_agent, str):
        return None
    return Actor(ip[:64], user_agent[:MAX_USER_AGENT])
