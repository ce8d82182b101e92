"""The courier: sends queued email jobs over SMTP, retries what may succeed later, never re-sends a sent job.

Several workers run at once, each with its own reused SMTP connection. A worker claims a small batch
(FOR UPDATE SKIP LOCKED, pushing the jobs one lease ahead), sends them one by one and records each
outcome right after the server's reply. A job is marked sent only after the server accepted it, so a
crash between acceptance and that update re-sends just the jobs in flight (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr

import asyncpg
import jinja2
import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode
from portal_shared import tracing
from portal_shared.clock import iso
from portal_shared.doorbell import Doorbell
from portal_shared.listen import listen_forever

from notifier_service import addresses, emails
from notifier_service.config import Settings
from notifier_service.mailer import (
    Mailer,
    PermanentSendError,
    ServerUnreachableError,
    SmtpOptions,
    TransientSendError,
)
from notifier_service.metrics import (
    EMAILS_EXPIRED,
    EMAILS_FAILED,
    EMAILS_RETRIED,
    EMAILS_SENT,
    JOBS_FAILED,
    JOBS_QUEUED,
    OLDEST_QUEUED_SECONDS,
)
from notifier_service.repository import jobs as jobs_repo
from notifier_service.repository.jobs import Job

log = structlog.get_logger("notifier.dispatcher")
STATS_INTERVAL_SECONDS = 2.0
STOP_GRACE_SECONDS = 10.0
PRUNE_EVERY_SECONDS = 3600.0
# While the SMTP server cannot be reached, a worker probes it again at least this often: the outage is
# not the jobs' fault, so it neither spends their attempts nor grows their backoff, and the backlog
# goes out within seconds of the server's return.
UNREACHABLE_PROBE_MAX_SECONDS = 5.0


def backoff_seconds(attempts: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so retries spread out."""
    step = min(cap, base * 2 ** max(attempts - 1, 0))
    return step / 2 + rand() * step / 2


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._config = settings.dispatch
        self._smtp = SmtpOptions(host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
                                 password=settings.smtp_password, starttls=settings.smtp_starttls,
                                 timeout=settings.dispatch.smtp_timeout_seconds)
        self._envelope_sender = parseaddr(settings.mail_from)[1] or settings.mail_from  # MAIL FROM: the bare address
        self._doorbell = Doorbell()
        self._stopping = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._helpers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        with tracing.untraced():  # the polls and claims are not traces; each send is its job's span (_deliver)
            self._start()

    def _start(self) -> None:
        self._helpers = [asyncio.create_task(self._listen(), name="notifier-listen"),
                         asyncio.create_task(self._update_stats(), name="notifier-stats")]
        self._workers = [asyncio.create_task(self._work(n), name=f"notifier-worker-{n}")
                         for n in range(self._config.workers)]

    async def stop(self) -> None:
        """Let each worker finish the email it is sending (so it is recorded as sent), then stop."""
        self._stopping.set()
        self._doorbell.ring_all()
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
        for task in self._helpers:
            task.cancel()
        await asyncio.gather(*self._workers, *self._helpers, return_exceptions=True)

    async def _work(self, number: int) -> None:
        mailer = Mailer(self._smtp)
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    # One connection per batch: claim, then each job's outcome, without a pool round per job.
                    async with self._pool.acquire() as conn:
                        jobs = await jobs_repo.claim_jobs(conn, limit=self._config.batch_size,
                                                           lease_seconds=self._config.lease_seconds)
                        if jobs:
                            await self._send_batch(conn, mailer, jobs)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database is down or failing over: wait, never give up
                    failures += 1
                    log.warning("dispatcher_error", worker=number, error=type(exc).__name__, detail=str(exc)[:200])
                    await asyncio.sleep(backoff_seconds(failures, base=0.2, cap=5.0))
                    continue
                if len(jobs) < self._config.batch_size:
                    await self._doorbell.wait(self._config.poll_seconds)
                else:
                    self._doorbell.ring()  # a full batch: more may be queued, so let an idle worker help
        finally:
            await mailer.close()

    async def _send_batch(self, conn: asyncpg.Connection, mailer: Mailer, jobs: list[Job]) -> None:
        for index, job in enumerate(jobs):
            if self._stopping.is_set():
                await jobs_repo.release(conn, [j.id for j in jobs[index:]], delay_seconds=0)
                return
            structlog.contextvars.bind_contextvars(event_id=job.id, event_type=job.type,
                                                   correlation_id=job.correlation_id or job.id)
            try:
                session_lost = await self._deliver(conn, mailer, job)
            except ServerUnreachableError as exc:
                # Give this job and the rest of the batch back unattempted; probe again shortly.
                delay = backoff_seconds(mailer.unreachable_streak, base=self._config.retry_base_seconds,
                                        cap=min(self._config.retry_max_seconds, UNREACHABLE_PROBE_MAX_SECONDS))
                log.warning("smtp_unreachable", error=str(exc)[:200], jobs=len(jobs) - index, retry_in=round(delay, 2))
                await jobs_repo.release(conn, [j.id for j in jobs[index:]], delay_seconds=delay,
                                         reason=f"SMTP server unreachable: {exc}")
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                raise  # the database is unreachable: the worker backs off; leases bring the jobs back
            except Exception as exc:  # a bug must not stall the queue: this job waits, the others go on
                log.exception("email_job_crashed")
                mailer.drop()  # whatever state the crash left the SMTP session in, the next job starts afresh
                await self._retry_later(conn, job, f"{type(exc).__name__}: {exc}", reason="error")
                session_lost = False
            finally:
                structlog.contextvars.unbind_contextvars("event_id", "event_type", "correlation_id")
            if session_lost:
                # A timeout or a hang-up can cost a whole SMTP timeout per job: rather than hold claims that
                # might outlast their lease (and be sent twice), give the rest back, due at once for any worker.
                await jobs_repo.release(conn, [j.id for j in jobs[index + 1:]], delay_seconds=0)
                return

    async def _deliver(self, conn: asyncpg.Connection, mailer: Mailer, job: Job) -> bool:
        """Send one job and record the outcome; True when a transient failure cost the SMTP session.

        A failure reschedules or fails only this job: the mailer has reset or dropped its session, so the
        next job starts clean (or finds the server down). The whole attempt is one span in the trace of the
        request that caused the email (the job's traceparent, else its correlation id as the trace id)."""
        parent = tracing.parent_for(getattr(job, "traceparent", None), correlation_id=job.correlation_id)
        # Attributes: the email's type and attempt only; never the address, the name or the link.
        tracer = tracing.tracer("notifier")  # per send, not per import: the global provider may be set later
        with tracer.start_as_current_span(f"send email {job.type}", context=parent, kind=SpanKind.CLIENT,
                                          attributes={"email.type": job.type, "email.attempt": job.attempts + 1},
                                          record_exception=False) as span:
            try:
                return await self._deliver_job(conn, mailer, job)
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    async def _deliver_job(self, conn: asyncpg.Connection, mailer: Mailer, job: Job) -> bool:
        if job.expires_at is not None and job.expires_at <= datetime.now(UTC):
            await jobs_repo.mark_expired(conn, job.id)
            EMAILS_EXPIRED.labels(job.type).inc()
            log.info("email_expired", expires_at=iso(job.expires_at))
            return False
        if job.recipient is None:
            # The user_created event has not arrived yet (events of different producers race): wait for it.
            await self._retry_later(conn, job, "recipient unknown: user not in the projection yet",
                                    reason="no_recipient")
            return False
        try:
            to = addresses.recipient(job.recipient)
        except addresses.UnusableAddress as exc:
            await self._fail(conn, job, f"cannot be sent: {job.recipient!r} is {exc}", recipient=job.recipient)
            return False
        try:
            rendered = emails.render(job, base_url=self._settings.common.portal_base_url,
                                     key=self._settings.service_auth_key)
            message = emails.build_message(job, rendered, recipient=to.address, mail_from=self._settings.mail_from,
                                           smtputf8=to.smtputf8)
        except (emails.TemplateMissing, jinja2.TemplateError, ValueError, TypeError) as exc:
            await self._fail(conn, job, f"cannot build the email: {exc}", recipient=to.address)
            return False
        try:
            await mailer.send(message, sender=self._envelope_sender, recipient=to.address, smtputf8=to.smtputf8)
        except PermanentSendError as exc:
            await self._fail(conn, job, str(exc), recipient=to.address)
            return False
        except ServerUnreachableError:
            raise
        except TransientSendError as exc:
            await self._retry_later(conn, job, str(exc), reason="smtp")
            return not mailer.connected
        await self._record_sent(conn, job, to.address)
        return False

    async def _record_sent(self, conn: asyncpg.Connection, job: Job, recipient: str) -> None:
        # The email is out: a lost update here would send it again once the lease ends. So insist (on a fresh
        # connection from the pool after the first try, in case the batch's connection broke) for up to half
        # the lease, which outlasts a database restart or failover.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.lease_seconds / 2
        attempt = 0
        while True:
            try:
                await jobs_repo.mark_sent(conn if attempt == 0 else self._pool, job.id, recipient)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                attempt += 1
                if loop.time() >= deadline:
                    raise
                log.warning("email_sent_not_recorded_yet", attempt=attempt, error=type(exc).__name__)
                await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))
        EMAILS_SENT.labels(job.type).inc()
        log.info("email_sent", attempts=job.attempts)

    async def _retry_later(self, conn: asyncpg.Connection, job: Job, error: str, *, reason: str) -> None:
        if job.attempts >= self._config.max_attempts:
            await self._fail(conn, job, f"gave up after {job.attempts} attempts: {error}")
            return
        delay = backoff_seconds(job.attempts, base=self._config.retry_base_seconds, cap=self._config.retry_max_seconds)
        await jobs_repo.reschedule(conn, job.id, delay_seconds=delay, reason=error)
        EMAILS_RETRIED.labels(reason).inc()
        log.info("email_retry_scheduled", attempts=job.attempts, delay=round(delay, 2), error=error[:200])

    async def _fail(self, conn: asyncpg.Connection, job: Job, reason: str, *, recipient: str | None = None) -> None:
        await jobs_repo.mark_failed(conn, job.id, reason, recipient=recipient)
        EMAILS_FAILED.labels(job.type).inc()
        log.error("email_failed", attempts=job.attempts, reason=reason[:300])

    async def _listen(self) -> None:
        """A committed job wakes the workers at once."""
        await listen_forever(self._settings.common.database_url, jobs_repo.NOTIFY_CHANNEL, self._doorbell,
                             name="dispatcher")

    async def _update_stats(self) -> None:
        """Refresh the queue gauges; now and then drop finished jobs past their retention."""
        loop = asyncio.get_running_loop()
        pruned_at = loop.time()
        while True:
            try:
                row = await jobs_repo.stats(self._pool)
                JOBS_QUEUED.set(row["queued"])
                JOBS_FAILED.set(row["failed"])
                OLDEST_QUEUED_SECONDS.set(float(row["oldest"]))
                if loop.time() - pruned_at > PRUNE_EVERY_SECONDS:
                    pruned_at = loop.time()
                    await jobs_repo.prune_finished(self._pool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dispatcher_stats_failed", error=type(exc).__name__)
            await asyncio.sleep(STATS_INTERVAL_SECONDS)
