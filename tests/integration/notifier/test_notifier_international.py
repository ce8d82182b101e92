"""Internationalised addresses (issue #13): SMTPUTF8 when the server offers it, else that one job fails at
once with its reason; an address whose domain alone is international goes out as punycode to any server."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from portal_shared.events import TotpEnabled
from test_notifier_delivery import FAST, operator

from tests.support.services import running_service

UNICODE_MAILBOX = "josé-x@client.example"   # no ASCII form at all
UNICODE_DOMAIN = "ada@bücher.example"       # ASCII form: ada@xn--bcher-kva.example


@pytest.mark.parametrize("offers_smtputf8", [True, False], ids=["smtputf8-server", "ascii-only-server"])
async def test_international_addresses_on_both_kinds_of_server(offers_smtputf8: bool, request, stack_env, publish,
                                                               make_user, db: asyncpg.Connection, until) -> None:
    sink = request.getfixturevalue("utf8_sink" if offers_smtputf8 else "own_sink")
    sink.start()
    async with running_service("notifier", stack_env, SMTP_PORT=sink.port, NOTIFIER_WORKERS="1", **FAST):
        mailbox_user, _ = await make_user(name="José", email=UNICODE_MAILBOX)
        domain_user, _ = await make_user(name="Ada", email=UNICODE_DOMAIN)
        [to_mailbox] = await publish(TotpEnabled(user_id=mailbox_user))
        [to_domain] = await publish(TotpEnabled(user_id=domain_user))

        [domain_mail] = await sink.wait_for(1, address="ada@xn--bcher-kva.example")
        assert domain_mail["Message-ID"] == f"<{to_domain.id}@portal>"
        assert domain_mail["To"] == "ada@xn--bcher-kva.example"
        assert "SMTPUTF8" not in sink.handler.mail_options["ada@xn--bcher-kva.example"]  # not needed: not asked

        job = await until(lambda: db.fetchrow("SELECT * FROM email_jobs WHERE id = $1 AND status <> 'queued'",
                                              to_mailbox.id))
        if offers_smtputf8:
            [mail] = await sink.wait_for(1, address=UNICODE_MAILBOX)
            assert mail["Message-ID"] == f"<{to_mailbox.id}@portal>" and mail["To"] == UNICODE_MAILBOX
            assert "SMTPUTF8" in sink.handler.mail_options[UNICODE_MAILBOX]
            assert job["status"] == "sent" and job["sent_to"] == UNICODE_MAILBOX
            return
        assert job["status"] == "failed" and job["attempts"] == 1  # at once: no retry can help
        assert "needs SMTPUTF8, which the SMTP server does not offer" in job["last_error"]
        await asyncio.sleep(0.3)
        assert sink.to(UNICODE_MAILBOX) == []
        code, out = await operator(stack_env, "list")
        [line] = [row for row in out.splitlines() if to_mailbox.id in row]
        assert code == 0 and UNICODE_MAILBOX in line and "SMTPUTF8" in line
