"""One bad job never silences other users' mail (issue #13): the SMTP session it spoiled is reset or
dropped before the next job, and a job that can never be sent fails at once, with a reason operators see.

One worker, so every job goes through the same reused connection that the bad job had a go at.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import pytest
from portal_shared.events import PasswordChanged, TotpDisabled, TotpEnabled
from test_notifier_delivery import FAST, operator

from tests.support.services import running_service

ONE_CONNECTION = {"NOTIFIER_WORKERS": "1", **FAST}
GOOD = 49

# kind -> (the bad user's address, how the sink treats it)
POISONS = {
    # The case: a syntax-valid address with no ASCII form, to a server without SMTPUTF8.
    "non_ascii_address_without_smtputf8": "josé-x@client.example",
    "a_5xx_for_one_recipient": "bounce@client.example",
    "a_dropped_connection_mid_message": "hangup@client.example",
}


def scripted(sink: Any, kind: str) -> None:
    if kind == "a_5xx_for_one_recipient":
        sink.handler.refuse["bounce"] = "550 5.1.1 No such mailbox"
    elif kind == "a_dropped_connection_mid_message":
        sink.handler.drop["hangup"] = 1  # once: its retry goes through


@pytest.mark.parametrize("kind", sorted(POISONS))
async def test_one_poison_job_in_fifty_and_the_other_49_are_delivered_exactly_once(
        kind: str, stack_env, publish, make_user, own_sink, db: asyncpg.Connection, until) -> None:
    scripted(own_sink, kind)
    own_sink.start()
    async with running_service("notifier", stack_env, SMTP_PORT=own_sink.port, **ONE_CONNECTION):
        users = [await make_user(name=f"User {n}") for n in range(10)]
        bad_user, bad_address = await make_user(name="Poison", email=POISONS[kind])
        kinds = (TotpEnabled, TotpDisabled)
        early = await publish(*(kinds[n % 2](user_id=users[n % 10][0]) for n in range(5)))
        [poison] = await publish(PasswordChanged(user_id=bad_user, method="change"))
        late = await publish(*(kinds[n % 2](user_id=users[n % 10][0]) for n in range(GOOD - 5)))
        good = {f"<{e.id}@portal>" for e in [*early, *late]}

        async def all_good_arrived() -> bool:
            return good <= {m["Message-ID"] for m in list(own_sink.messages)}

        await until(all_good_arrived, within=30)
        job = await until(lambda: db.fetchrow("SELECT * FROM email_jobs WHERE id = $1 AND status <> 'queued'",
                                              poison.id), within=30)
        await asyncio.sleep(0.5)  # a late duplicate would show up now
        seen = Counter(m["Message-ID"] for m in own_sink.messages)
        assert {mid: n for mid, n in seen.items() if mid in good} == dict.fromkeys(good, 1)
        assert await db.fetchval("SELECT count(*) FROM email_jobs WHERE status = 'sent' AND id <> $1",
                                 poison.id) == GOOD

        if kind == "a_dropped_connection_mid_message":
            # Not the job's fault: retried on a new connection, and then sent once.
            assert job["status"] == "sent" and job["attempts"] == 2
            assert seen[f"<{poison.id}@portal>"] == 1
            return
        # Its own fault: failed at its first attempt, not retried 30 times, with a reason that says why.
        assert job["status"] == "failed" and job["attempts"] == 1
        assert f"<{poison.id}@portal>" not in seen
        code, out = await operator(stack_env, "list")
        [line] = [row for row in out.splitlines() if poison.id in row]
        assert code == 0 and bad_address in line, "the operator sees where it was going"
        if kind == "a_5xx_for_one_recipient":
            assert "550 5.1.1 No such mailbox" in line
        else:
            assert "needs SMTPUTF8, which the SMTP server does not offer" in line


async def test_a_refused_mail_from_is_the_session_s_fault_never_the_job_s(stack_env, publish, make_user, own_sink,
                                                                          db: asyncpg.Connection, until) -> None:
    # The symptom: a confused session answers MAIL FROM with 503; a 5xx there refuses our sender.
    # Neither says anything about the job, so neither fails it.
    own_sink.handler.mail_replies = ["503 5.5.1 Error: nested MAIL command", "550 5.7.1 Sender refused"]
    own_sink.start()
    async with running_service("notifier", stack_env, SMTP_PORT=own_sink.port, **ONE_CONNECTION):
        uid, address = await make_user()
        events = await publish(*(TotpEnabled(user_id=uid) for _ in range(3)))
        await own_sink.wait_for(3, address=address, timeout=20)
        await until(lambda: db.fetchval("SELECT count(*) = 3 FROM email_jobs WHERE status = 'sent'"))
        assert Counter(m["Message-ID"] for m in own_sink.messages) == {f"<{e.id}@portal>": 1 for e in events}
        assert not own_sink.handler.mail_replies
