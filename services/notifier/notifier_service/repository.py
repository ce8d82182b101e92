"""Plain SQL over the notifier schema: the users projection and the email job queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from portal_shared.consumer import Statement

NOTIFY_CHANNEL = "notifier_email_jobs"
# The queue's functions run on the pool or on a connection the caller holds (a dispatcher worker's batch).
Executor = asyncpg.Pool | asyncpg.Connection

# Consumer statements (portal_shared.consumer.Statement): each runs in one statement with the event's inbox
# claim ($1–$3, the CTE `claimed`) and does nothing for a duplicate. An older event never overwrites a newer
# one's name or address.
_UPSERT_USER = """
INSERT INTO users (user_id, email, name, event_at)
SELECT $4::text, $5::text, $6::text, $7::timestamptz WHERE EXISTS (SELECT 1 FROM claimed)
ON CONFLICT (user_id) DO UPDATE
SET email = EXCLUDED.email, name = EXCLUDED.name, event_at = EXCLUDED.event_at, updated_at = now()
WHERE users.event_at <= EXCLUDED.event_at
"""
_INSERT_JOB = """
INSERT INTO email_jobs (id, type, user_id, recipient, data, occurred_at, expires_at, correlation_id)
SELECT $4::text, $5::text, $6::text, $7::text, $8::jsonb, $9::timestamptz, $10::timestamptz, $11::text
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
SELECT c.id, c.type, c.user_id, c.data, c.occurred_at, c.expires_at, c.attempts, c.correlation_id,
       coalesce(c.recipient, u.email) AS recipient, u.name AS user_name
FROM claimed c LEFT JOIN users u ON u.user_id = c.user_id
ORDER BY c.next_attempt_at
"""
_MARK_SENT = """
UPDATE email_jobs SET status = 'sent', sent_to = $2, last_error = NULL, finished_at = now()
WHERE id = $1
"""
_MARK_FINISHED = """
UPDATE email_jobs SET status = $2, last_error = $3, finished_at = now()
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
SELECT id, type, user_id, coalesce(sent_to, recipient) AS recipient, status, attempts, next_attempt_at,
       last_error, created_at, finished_at
FROM email_jobs WHERE ($1::text IS NULL OR status = $1)
ORDER BY created_at DESC LIMIT $2
"""
# Only failed jobs go back to the queue: a sent job is never sent again, an expired link stays expired.
_RETRY = """
UPDATE email_jobs SET status = 'queued', attempts = 0, next_attempt_at = now(), last_error = NULL,
                      finished_at = NULL
WHERE status = 'failed' AND ($1::text IS NULL OR id = $1)
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed email job, with the address and name current at send time."""

    id: str
    type: str
    user_id: str
    data: dict[str, Any]
    occurred_at: datetime
    expires_at: datetime | None
    attempts: int
    recipient: str | None
    user_name: str | None
    correlation_id: str | None = None


def upsert_user(*, user_id: str, email: str, name: str, event_at: datetime) -> Statement:
    return Statement(_UPSERT_USER, (user_id, email, name, event_at))


def insert_job(*, job_id: str, type: str, user_id: str, recipient: str | None, data: dict[str, Any],
               occurred_at: datetime, expires_at: datetime | None, correlation_id: str | None = None) -> Statement:
    return Statement(_INSERT_JOB, (job_id, type, user_id, recipient, data, occurred_at, expires_at, correlation_id))


async def claim_jobs(pool: Executor, *, limit: int, lease_seconds: float) -> list[Job]:
    rows = await pool.fetch(_CLAIM, limit, float(lease_seconds))
    return [Job(**dict(row)) for row in rows]


async def mark_sent(pool: Executor, job_id: str, recipient: str) -> None:
    await pool.execute(_MARK_SENT, job_id, recipient)


async def mark_failed(pool: Executor, job_id: str, reason: str) -> None:
    await pool.execute(_MARK_FINISHED, job_id, "failed", reason[:1000])


async def mark_expired(pool: Executor, job_id: str) -> None:
    await pool.execute(_MARK_FINISHED, job_id, "expired", "link expired before the email could be sent")


async def reschedule(pool: Executor, job_id: str, *, delay_seconds: float, reason: str) -> None:
    await pool.execute(_RESCHEDULE, job_id, float(delay_seconds), reason[:1000])


async def stats(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow(_STATS)
    assert row is not None  # an aggregate always returns a row
    return row


async def list_jobs(conn: asyncpg.Connection, *, status: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(_LIST, status, limit)


async def retry_failed(conn: asyncpg.Connection, *, job_id: str | None) -> list[str]:
    """Queue failed jobs again (one, or all when job_id is None) and wake the dispatchers."""
    async with conn.transaction():
        ids = [r["id"] for r in await conn.fetch(_RETRY, job_id)]
        if ids:
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return ids


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
