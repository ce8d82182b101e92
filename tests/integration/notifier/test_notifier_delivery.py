"""Delivery as a courier: duplicates, SMTP outages, 4xx and 5xx replies, malformed events, operator commands."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter

import aio_pika
import asyncpg
from portal_shared.events import PasswordChanged, SecurityKeyAdded, TotpDisabled, TotpEnabled

from tests.support.services import running_service
from tests.support.smtp import SmtpSink

FAST = {"NOTIFIER_RETRY_BASE_SECONDS": "0.2", "NOTIFIER_RETRY_MAX_SECONDS": "1.5", "NOTIFIER_POLL_SECONDS": "0.1",
        "NOTIFIER_LEASE_SECONDS": "5", "SMTP_TIMEOUT_SECONDS": "5"}


async def operator(stack_env: dict[str, str], *args: str) -> tuple[int, str]:
    """`python -m notifier_service jobs ...` as an operator runs it, with only DATABASE_URL."""
    env = {**os.environ, "DATABASE_URL": stack_env["NOTIFIER_DATABASE_URL"]}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "notifier_service", "jobs", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


def message_ids(sink: SmtpSink) -> Counter[str]:
    return Counter(m["Message-ID"] for m in sink.messages)


async def test_the_same_event_delivered_twice_sends_one_email(notifier, publish, make_user, smtp_sink: SmtpSink,
                                                              db: asyncpg.Connection) -> None:
    uid, address = await make_user()
    [event] = await publish(TotpEnabled(user_id=uid))
    await publish(event)
    await smtp_sink.wait_for(1, address=address)
    await publish(event)  # a redelivery long after the email went out
    await asyncio.sleep(0.7)
    assert message_ids(smtp_sink) == {f"<{event.id}@portal>": 1}
    assert await db.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", event.id) == 1


async def test_an_smtp_outage_delays_every_email_and_loses_none(stack_env, publish, make_user, own_sink,
                                                                db: asyncpg.Connection, until) -> None:
    async with running_service("notifier", stack_env, SMTP_PORT=own_sink.port, **FAST):  # nothing listens there
        users = [await make_user() for _ in range(5)]
        kinds = (TotpEnabled, TotpDisabled)
        events = await publish(*(kinds[n % 2](user_id=users[n % 5][0]) for n in range(300)))
        await until(lambda: db.fetchval("SELECT count(*) = 300 FROM email_jobs"))
        await until(lambda: db.fetchval("SELECT count(*) >= 20 FROM email_jobs WHERE last_error IS NOT NULL"))
        await asyncio.sleep(1.0)  # down a while longer: retries back off
        assert await db.fetchval("SELECT count(*) FROM email_jobs WHERE status = 'queued'") == 300
        assert "ConnectError" in await db.fetchval("SELECT last_error FROM email_jobs WHERE last_error IS NOT NULL "
                                                   "LIMIT 1")

        own_sink.start()
        await own_sink.wait_for(300, timeout=60)
        await asyncio.sleep(0.5)
        assert message_ids(own_sink) == Counter({f"<{e.id}@portal>": 1 for e in events})
        assert await db.fetchval("SELECT count(*) FROM email_jobs WHERE status = 'sent'") == 300


async def test_a_4xx_reply_is_retried_until_accepted(stack_env, publish, make_user, own_sink,
                                                     db: asyncpg.Connection, until) -> None:
    own_sink.handler.refuse["greylisted"] = "451 4.7.1 Greylisted, try again later"
    own_sink.start()
    async with running_service("notifier", stack_env, SMTP_PORT=own_sink.port, **FAST) as client:
        uid, address = await make_user(email=f"greylisted-{uuid.uuid4().hex[:6]}@client.example")
        [event] = await publish(SecurityKeyAdded(user_id=uid, key_id="k", name="Key"))
        job = await until(lambda: db.fetchrow("SELECT * FROM email_jobs WHERE attempts >= 3"))
        assert job["status"] == "queued" and job["last_error"].startswith("451")
        own_sink.handler.refuse.clear()
        await own_sink.wait_for(1, address=address)
        await asyncio.sleep(0.5)
        assert message_ids(own_sink) == {f"<{event.id}@portal>": 1}
        metrics = await (await client.get("/metrics")).text()
        for name in ("portal_notifier_jobs_queued", "portal_notifier_oldest_queued_age_seconds",
                     'portal_notifier_emails_sent_total{type="mfa.security_key_added"}',
                     'portal_notifier_emails_retried_total{reason="smtp"}', "portal_notifier_jobs_failed"):
            assert name in metrics


async def test_a_5xx_rejection_fails_the_job_and_the_queue_keeps_flowing(stack_env, publish, make_user, own_sink,
                                                                         db: asyncpg.Connection, until) -> None:
    own_sink.handler.refuse["bounce"] = "550 5.1.1 No such mailbox"
    own_sink.start()
    async with running_service("notifier", stack_env, SMTP_PORT=own_sink.port, **FAST):
        bad_user, _ = await make_user(email="bounce@client.example")
        good_user, good = await make_user()
        [rejected] = await publish(PasswordChanged(user_id=bad_user, method="change"))
        others = await publish(*(TotpEnabled(user_id=good_user) for _ in range(20)))
        await own_sink.wait_for(20, address=good)
        job = await until(lambda: db.fetchrow("SELECT * FROM email_jobs WHERE id = $1 AND status = 'failed'",
                                              rejected.id))
        assert "550" in job["last_error"] and "No such mailbox" in job["last_error"] and job["attempts"] == 1
        assert message_ids(own_sink) == Counter({f"<{e.id}@portal>": 1 for e in others})

        code, out = await operator(stack_env, "list")
        assert code == 0 and rejected.id in out and "550 5.1.1" in out and others[0].id not in out
        code, out = await operator(stack_env, "retry", "--id", others[0].id)  # sent: never sent again
        assert code == 1 and "not failed" in out
        own_sink.handler.refuse.clear()
        code, out = await operator(stack_env, "retry", "--all-failed")
        assert code == 0 and rejected.id in out
        [message] = await own_sink.wait_for(1, address="bounce@client.example")
        assert message["Message-ID"] == f"<{rejected.id}@portal>"
        await until(lambda: db.fetchval("SELECT status = 'sent' FROM email_jobs WHERE id = $1", rejected.id))
        assert len(own_sink.messages) == 21


async def test_a_malformed_event_is_dead_lettered_and_consuming_goes_on(notifier, publish, make_user,
                                                                        smtp_sink: SmtpSink, stack_env,
                                                                        db: asyncpg.Connection, until) -> None:
    uid, address = await make_user()
    no_data = {"id": str(uuid.uuid4()), "type": "mfa.totp_enabled", "version": 1,
               "occurred_at": "2025-01-01T00:00:00Z", "data": {}}
    bad_expiry = {"id": str(uuid.uuid4()), "type": "profile.password_reset_requested", "version": 1,
                  "occurred_at": "2025-01-01T00:00:00Z", "data": {"user_id": uid, "email": address,
                                                                    "reset_url": "http://x", "expires_at": "soon"}}
    await publish(raw=("mfa.totp_enabled", b"{not json"))
    await publish(raw=("mfa.totp_enabled", json.dumps(no_data).encode()))
    await publish(raw=("profile.password_reset_requested", json.dumps(bad_expiry).encode()))
    [good] = await publish(TotpEnabled(user_id=uid))
    [message] = await smtp_sink.wait_for(1, address=address)
    assert message["Message-ID"] == f"<{good.id}@portal>"

    connection = await aio_pika.connect(stack_env["AMQP_URL"])
    async with connection:
        channel = await connection.channel()

        async def three_dead_letters() -> bool:
            queue = await channel.declare_queue("notifier.dead-letter", passive=True)
            return queue.declaration_result.message_count == 3

        await until(three_dead_letters)
    assert await db.fetchval("SELECT count(*) FROM email_jobs") == 1
