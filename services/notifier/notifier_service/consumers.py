"""Event handlers: each contract event becomes an email job (or a projection update) with its inbox row.

Each handler is one SQL statement that the shared consumer (portal_shared.consumer.OneStatement) runs
together with the message's inbox claim, so a redelivered event finds its inbox row and never queues a
second email, at one database round trip per event.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from portal_shared import tracing
from portal_shared.consumer import Handler, OneStatement, PermanentError, Statement
from portal_shared.events import (
    ALL_EVENTS,
    EmailChanged,
    Envelope,
    PasswordResetRequested,
    UserCreated,
    UserInvited,
    UserUpdated,
)
from portal_shared.ids import is_event_id

from notifier_service.repository import jobs as jobs_repo
from notifier_service.repository import users as users_repo

PROJECTION_EVENTS = (UserCreated, UserUpdated)
EMAIL_EVENTS = tuple(cls for cls in ALL_EVENTS if cls not in PROJECTION_EVENTS)
OLD, NEW = "old", "new"  # the copies of an address change's email


def parse_timestamp(value: str, *, field: str) -> datetime:
    """An ISO 8601 timestamp with its offset (the contract's timestamps are UTC); anything else is permanent."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise PermanentError(f"{field} is not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise PermanentError(f"{field} has no UTC offset: {value!r}")
    return parsed


def user_statement(envelope: Envelope) -> Statement:
    event = envelope.event
    assert isinstance(event, UserCreated | UserUpdated)
    return users_repo.upsert_user(user_id=event.user_id, email=event.email, name=event.name,
                                  event_at=parse_timestamp(envelope.occurred_at, field="occurred_at"))


def copies(envelope: Envelope) -> list[jobs_repo.Copy]:
    """The emails an event asks for: one, to the user's address at send time, unless the event names it."""
    event = envelope.event
    if isinstance(event, UserInvited | PasswordResetRequested):
        # These carry their own address: an invitee has no projection row yet, and a reset goes where asked.
        return [jobs_repo.Copy(envelope.id, recipient=event.email)]
    if isinstance(event, EmailChanged):
        # Both addresses hear of it, each once: the old one (with the "This wasn't me" link that restores it)
        # under its own job id and Message-ID, the new one under the event's.
        return [jobs_repo.Copy(f"{envelope.id}.{OLD}", variant=OLD, recipient=event.old_email),
                jobs_repo.Copy(envelope.id, variant=NEW, recipient=event.new_email)]
    return [jobs_repo.Copy(envelope.id)]


def email_statement(envelope: Envelope) -> Statement:
    event = envelope.event
    if not is_event_id(envelope.id):  # it becomes the Message-ID's left part: refuse anything else
        raise PermanentError(f"event id {envelope.id[:80]!r} cannot name an email")
    expires_at: datetime | None = None
    if isinstance(event, UserInvited | PasswordResetRequested):
        expires_at = parse_timestamp(event.expires_at, field="expires_at")
    return jobs_repo.insert_jobs(
        event_id=envelope.id, type=envelope.type, user_id=event.user_id, copies=copies(envelope),
        data=dataclasses.asdict(event), occurred_at=parse_timestamp(envelope.occurred_at, field="occurred_at"),
        expires_at=expires_at, correlation_id=envelope.correlation_id,
        traceparent=tracing.current_traceparent(),  # built inside the consume span: the send continues it
    )


project_user = OneStatement(user_statement)
queue_email = OneStatement(email_statement)


def event_handlers() -> dict[str, Handler]:
    """The handler of every event type in the contract, keyed by routing key (= event type)."""
    handlers: dict[str, Handler] = {cls.type: project_user for cls in PROJECTION_EVENTS}
    handlers.update({cls.type: queue_email for cls in EMAIL_EVENTS})
    return handlers
