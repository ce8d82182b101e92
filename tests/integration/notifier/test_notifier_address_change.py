"""An address change is emailed to both addresses, each once; an undo says what it undid (issue #13)."""

from __future__ import annotations

import asyncio
import html
import re
from collections import Counter
from urllib.parse import parse_qs, urlparse

import asyncpg
from portal_shared import tokens
from portal_shared.events import ChangeUndone, EmailChanged, TwoFactorEnabled, UserUpdated

from tests.support.smtp import SmtpSink

NOT_ME = re.compile(r"http://localhost:8080/portal/not-me\?token=[^\s\"<]+")


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


async def test_an_address_change_emails_the_old_address_with_the_undo_link_and_the_new_without(
        notifier, publish, make_user, smtp_sink: SmtpSink, db: asyncpg.Connection, stack_env, until) -> None:
    uid, old = await make_user(name="Ada")
    new = f"ada-new-{uid[:6]}@client.example"
    [changed] = await publish(EmailChanged(user_id=uid, old_email=old, new_email=new))
    await publish(UserUpdated(user_id=uid, email=new, name="Ada"))
    await smtp_sink.wait_for(2)
    await publish(changed)  # a redelivery: no third email
    await asyncio.sleep(0.7)

    assert Counter(m["Message-ID"] for m in smtp_sink.messages) == {f"<{changed.id}.old@portal>": 1,
                                                                    f"<{changed.id}@portal>": 1}
    [to_old] = smtp_sink.to(old)
    [to_new] = smtp_sink.to(new)
    assert to_old["Message-ID"] == f"<{changed.id}.old@portal>" and to_new["Message-ID"] == f"<{changed.id}@portal>"
    for message in (to_old, to_new):
        assert message["X-Portal-Event"] == "profile.email_changed"
    assert f"Your sign-in address was changed to {new}" in " ".join(text_of(to_old).split())
    [link] = NOT_ME.findall(text_of(to_old))
    assert html.escape(link) in html_of(to_old) or link in html_of(to_old)
    claims = tokens.verify(stack_env["SERVICE_AUTH_KEY"], tokens.NOT_ME, parse_qs(urlparse(link).query)["token"][0])
    assert (claims["sub"], claims["jti"], claims["evt"]) == (uid, changed.id, "profile.email_changed")
    assert "not-me" not in text_of(to_new) + html_of(to_new) and old not in text_of(to_new)
    assert "is now the sign-in address" in " ".join(text_of(to_new).split())
    rows = await db.fetch("SELECT id, event_id, status, sent_to FROM email_jobs ORDER BY id")
    assert [tuple(r) for r in rows] == [(changed.id, changed.id, "sent", new),
                                        (f"{changed.id}.old", changed.id, "sent", old)]


async def test_undoing_an_address_change_writes_to_the_restored_address(notifier, publish, make_user,
                                                                        smtp_sink: SmtpSink) -> None:
    uid, old = await make_user(name="Ada")
    new = f"intruder-{uid[:6]}@evil.example"
    [changed] = await publish(EmailChanged(user_id=uid, old_email=old, new_email=new))
    await publish(UserUpdated(user_id=uid, email=new, name="Ada"))
    await smtp_sink.wait_for(2)
    # The undo's email must not follow the projection, which may still hold the intruder's address.
    [undone] = await publish(ChangeUndone(user_id=uid, undone_event_id=changed.id,
                                          undone_type="profile.email_changed"))
    [message] = [m for m in await smtp_sink.wait_for(2, address=old) if m["Message-ID"] == f"<{undone.id}@portal>"]
    assert message["X-Portal-Event"] == "profile.change_undone"
    text = " ".join(text_of(message).split())
    assert "Your previous sign-in address was restored" in text and "not-me" not in text
    assert len(smtp_sink.to(new)) == 1


async def test_an_undo_that_turned_two_factor_off_names_the_key_and_says_how_to_turn_it_on(
        notifier, publish, make_user, smtp_sink: SmtpSink) -> None:
    uid, address = await make_user()
    [enabled] = await publish(TwoFactorEnabled(user_id=uid, method="webauthn", key_id="k1", name="Desk key"))
    await smtp_sink.wait_for(1, address=address)
    await publish(ChangeUndone(user_id=uid, undone_event_id=enabled.id, undone_type="mfa.two_factor_enabled",
                               two_factor_disabled=True))
    [_, message] = await smtp_sink.wait_for(2, address=address)
    text = " ".join(text_of(message).split())
    assert 'The security key "Desk key" that was added was removed' in text
    assert "Two-factor authentication is now off" in text and "To turn it on again" in text
    assert "not-me" not in text + html_of(message)
