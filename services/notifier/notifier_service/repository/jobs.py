"""SQL of the email job queue (table `email_jobs`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from portal_shared.consumer import Statement
from portal_shared.events import SECRET_DATA_FIELDS

NOTIFY_CHANNEL = "notifier_email_jobs"
# The queue's functions run on the pool or on a connection the caller holds (a dispatcher worker's batch).
Executor = asyncpg.Pool | asyncpg.Connection

# Consumer statements (portal_shared.consumer.Statement): each runs in one statement with the event's inbox
# claim ($1–$3, the CTE `claimed`) and does nothing for a duplicate.
# One row per copy of the event's email (usually one; two for an address change). A change_undone job looks
# up its undone event's job: it keeps what that email named (`undone`: method and key name) so it can say what
# was removed, and after an address change's undo it goes to the restored (old) address, whatever the users
# projection says by then.
_INSERT_JOBS = """
INSERT INTO email_jobs (id, event_id, variant, type, user_id, recipient, data, occurred_at, expires_at,
                        correlation_id, traceparent)
SELECT copy.id, $4::text, copy.variant, $5::text, $6::text, coalesce(copy.recipient, o.data ->> 'old_email'),
       CASE WHEN o.id IS NULL THEN $7::jsonb
            ELSE $7::jsonb || jsonb_build_object('undone', jsonb_build_object('method', o.data -> 'method',
                                                                              'name', o.data -> 'name')) END,
       $8::timestamptz, $9::timestamptz, $10::text, $14::text
FROM unnest($11::text[], $12::text[], $13::text[]) AS copy (id, variant, recipient)
LEFT JOIN email_jobs o ON o.id = $7::jsonb ->> 'undone_event_id' AND o.user_id = $6::text
WHERE EXISTS (SELECT 1 FROM claimed)
ON CONFLICT (id) DO NOTHING
"""
# Claim: due jobs are pushed one lease ahead in the same statement that locks them, so other workers
# and replicas skip them now and a crashed sender's jobs come due again after the lease.
_CLAIM = """
WITH due AS (
    SELECT id FROM email_jobs
    WHERE status = 'queued' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE email_jobs j
    SET attempts = j.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
    FROM due WHERE j.id = due.id
    RETURNING j.*
)
SELECT c.id, c.event_id, c.variant, c.type, c.user_id, c.data, c.occurred_at, c.expires_at, c.attempts,
       c.correlation_id, c.traceparent,
       coalesce(c.recipient, u.email) AS recipient, u.name AS user_name
FROM claimed c LEFT JOIN users u ON u.user_id = c.user_id
ORDER BY c.next_attempt_at
"""
# A reset or invitation link is worth something only until its email is out (or never will be): a finished
# job drops it, so no usable link stays at rest. An operator cannot re-send such a job (see _RETRY).
LINK_TYPES = ("profile.user_invited", "profile.password_reset_requested")
_MARK_SENT = """
UPDATE email_jobs SET status = 'sent', sent_to = $2, last_recipient = $2, last_error = NULL, finished_at = now(),
                      data = data - $3::text[]
WHERE id = $1
"""
_MARK_FINISHED = """
UPDATE email_jobs SET status = $2, last_error = $3, last_recipient = coalesce($4, last_recipient),
                      finished_at = now(), data = data - $5::text[]
WHERE id = $1 AND status = 'queued'
"""
_RESCHEDULE = """
UPDATE email_jobs SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
WHERE id = $1 AND status = 'queued'
"""
_STATS = """
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued')), 0) AS oldest
FROM email_jobs WHERE status IN ('queued', 'failed')
"""
_LIST = """
SELECT id, type, user_id, coalesce(sent_to, last_recipient, recipient) AS recipient, status, attempts, next_attempt_at,
       last_error, created_at, finished_at
FROM email_jobs WHERE ($1::text IS NULL OR status = $1)
ORDER BY created_at DESC LIMIT $2
"""
# Only failed jobs go back to the queue: a sent job is never sent again, an expired link stays expired,
# and a failed reset or invitation no longer has its link (the user or an admin asks for a new one).
_RETRY = """
UPDATE email_jobs SET status = 'queued', attempts = 0, next_attempt_at = now(), last_error = NULL,
                      finished_at = NULL
WHERE status = 'failed' AND ($1::text IS NULL OR id = $1) AND type <> ALL($2::text[])
RETURNING id
"""
_LINK_LOST = """
SELECT id FROM email_jobs WHERE status = 'failed' AND ($1::text IS NULL OR id = $1) AND type = ANY($2::text[])
"""


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed email job, with the address and name current at send time."""

    id: str          # the job's own: the event id, or `{event id}.old` for an address change's second copy
    event_id: str
    variant: str | None  # None for the one email of an event; "old" / "new" for an address change's copies
    type: str
    user_id: str
    data: dict[str, Any]
    occurred_at: datetime
    expires_at: datetime | None
    attempts: int
    recipient: str | None
    user_name: str | None
    correlation_id: str | None = None
    traceparent: str | None = None  # the consume's span context: the send span continues the request's trace


@dataclass(frozen=True, slots=True)
class Copy:
    """One email of an event: its job id, which copy it is, and its address when the event names it."""

    id: str
    variant: str | None = None
    recipient: str | None = None  # None: the users projection's address at send time


def insert_jobs(*, event_id: str, type: str, user_id: str, copies: list[Copy], data: dict[str, Any],
                occurred_at: datetime, expires_at: datetime | None, correlation_id: str | None = None,
                traceparent: str | None = None) -> Statement:
    return Statement(_INSERT_JOBS, (event_id, type, user_id, data, occurred_at, expires_at, correlation_id,
                                    [c.id for c in copies], [c.variant for c in copies],
                                    [c.recipient for c in copies], traceparent))


async def claim_jobs(pool: Executor, *, limit: int, lease_seconds: float) -> list[Job]:
    rows = await pool.fetch(_CLAIM, limit, float(lease_seconds))
    return [Job(**dict(row)) for row in rows]


async def mark_sent(pool: Executor, job_id: str, recipient: str) -> None:
    await pool.execute(_MARK_SENT, job_id, recipient, SECRET_DATA_FIELDS)


async def mark_failed(pool: Executor, job_id: str, reason: str, *, recipient: str | None = None) -> None:
    await pool.execute(_MARK_FINISHED, job_id, "failed", reason[:1000], recipient, SECRET_DATA_FIELDS)


async def mark_expired(pool: Executor, job_id: str) -> None:
    await pool.execute(_MARK_FINISHED, job_id, "expired", "link expired before the email could be sent", None,
                       SECRET_DATA_FIELDS)


async def reschedule(pool: Executor, job_id: str, *, delay_seconds: float, reason: str) -> None:
    await pool.execute(_RESCHEDULE, job_id, float(delay_seconds), reason[:1000])


async def stats(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow(_STATS)
    assert row is not None  # an aggregate always returns a row
    return row


async def list_jobs(conn: asyncpg.Connection, *, status: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST, status, limit)


async def retry_failed(conn: asyncpg.Connection, *, job_id: str | None) -> tuple[list[str], list[str]]:
    """Queue failed jobs again (one, or all when job_id is None) and wake the dispatchers. Returns the ids
    queued, and those left failed because their link is gone (a reset or invitation to ask for anew)."""
    async with conn.transaction():
        ids = [r["id"] for r in await conn.fetch(_RETRY, job_id, LINK_TYPES)]
        link_lost = [r["id"] for r in await conn.fetch(_LINK_LOST, job_id, LINK_TYPES)]
        if ids:
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return ids, link_lost


_RELEASE = """
UPDATE email_jobs SET attempts = greatest(attempts - 1, 0), next_attempt_at = now() + make_interval(secs => $2),
                      last_error = coalesce($3, last_error)
WHERE id = ANY($1::text[]) AND status = 'queued'
"""


async def release(pool: Executor, job_ids: list[str], *, delay_seconds: float, reason: str | None = None) -> None:
    """Give back claimed jobs that were not attempted (their claim does not count as an attempt)."""
    if job_ids:
        await pool.execute(_RELEASE, job_ids, float(delay_seconds), reason[:1000] if reason else None)


# Failed jobs stay until an operator acts; sent and expired ones only serve as a record for a while.
_PRUNE = """
DELETE FROM email_jobs WHERE status IN ('sent', 'expired') AND finished_at < now() - make_interval(days => $1)
"""


async def prune_finished(pool: asyncpg.Pool, *, keep_days: int = 30) -> None:
    await pool.execute(_PRUNE, keep_days)
