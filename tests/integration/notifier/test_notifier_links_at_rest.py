"""No usable link at rest (issue #13): a reset or invitation link stays in the notifier only until its email
is sent, failed or expired, and no log line ever carries one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from portal_shared.events import PasswordResetRequested, UserInvited
from test_notifier_delivery import FAST, operator

from tests.support.services import running_service


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat().replace("+00:00", "Z")


async def everything_in_the_schema(db: asyncpg.Connection) -> str:
    """Every row of every notifier table, as text: wherever a link might hide."""
    tables = await db.fetch("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'notifier' AND table_type = 'BASE TABLE'")
    assert {"email_jobs", "inbox", "users"} <= {t["table_name"] for t in tables}
    rows = [await db.fetch(f'SELECT t::text AS row FROM notifier."{t["table_name"]}" t') for t in tables]
    return "\n".join(r["row"] for table in rows for r in table)


async def test_links_are_scrubbed_once_sent_failed_or_expired_and_never_logged(
        stack_env, publish, make_user, own_sink, db: asyncpg.Connection, until, capfd: pytest.CaptureFixture[str]
) -> None:
    own_sink.handler.refuse["bounce"] = "550 5.1.1 No such mailbox"
    own_sink.start()
    secret = uuid.uuid4().hex  # every link carries it, so one search finds any copy
    sent_link = f"http://localhost:8080/portal/reset-password?token=sent-{secret}"
    failed_link = f"http://localhost:8080/portal/accept-invite?token=failed-{secret}"
    expired_link = f"http://localhost:8080/portal/reset-password?token=expired-{secret}"
    async with running_service("notifier", stack_env, SMTP_PORT=own_sink.port, **FAST):
        uid, address = await make_user()
        [sent] = await publish(PasswordResetRequested(user_id=uid, email=address, reset_url=sent_link,
                                                      expires_at=in_future(hours=1)))
        [failed] = await publish(UserInvited(user_id=str(uuid.uuid4()), email="bounce@client.example", name="B",
                                             set_password_url=failed_link, expires_at=in_future(days=3)))
        [expired] = await publish(PasswordResetRequested(user_id=uid, email=address, reset_url=expired_link,
                                                         expires_at=in_future(seconds=-1)))
        [message] = await own_sink.wait_for(1, address=address)
        assert sent_link in message.get_body(("plain",)).get_content()  # the email itself does carry it
        statuses = {sent.id: "sent", failed.id: "failed", expired.id: "expired"}

        async def all_finished() -> bool:
            rows = await db.fetch("SELECT id, status FROM email_jobs")
            return {r["id"]: r["status"] for r in rows} == statuses

        await until(all_finished)
        assert secret not in await everything_in_the_schema(db)
        data = {r["id"]: json.loads(r["data"]) for r in await db.fetch("SELECT id, data FROM email_jobs")}
        assert "reset_url" not in data[sent.id] and "set_password_url" not in data[failed.id]
        assert data[sent.id]["email"] == address  # the rest of the record stays

        # The failed invitation cannot be re-sent: its link is gone, and the operator is told what to do.
        code, out = await operator(stack_env, "retry", "--id", failed.id)
        assert code == 1 and "no longer kept" in out and "new invitation" in out
        assert await db.fetchval("SELECT status FROM email_jobs WHERE id = $1", failed.id) == "failed"

    logs = "".join(capfd.readouterr())
    assert "email_sent" in logs and "email_failed" in logs and "email_expired" in logs  # the lines were captured
    assert secret not in logs
