"""Each contract event becomes exactly one email with the right address, headers, subject and content."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlparse

import asyncpg
from notifier_service.emails import SUBJECTS
from portal_shared import tokens
from portal_shared.events import (
    ChangeUndone,
    Envelope,
    ImpersonationStarted,
    MfaResetByAdmin,
    NewDeviceSignIn,
    PasswordChanged,
    PasswordResetRequested,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecurityKeyAdded,
    SecurityKeyRemoved,
    SecurityKeyRenamed,
    SsoLinked,
    TotpDisabled,
    TotpEnabled,
    TwoFactorDisabled,
    TwoFactorEnabled,
    UserCreated,
    UserInvited,
    UserUpdated,
)

from tests.support.smtp import SmtpSink

# Whatever a careless producer might put into `data`: none of it may reach an email.
LEAKS = {"password": "Hunter2-Leak!", "secret": "JBSWY3DPEHPK3PXPLEAK", "recovery_codes": ["LEAK1-CODE1"],
         "code": "LEAK9-CODE9", "otpauth_uri": "otpauth://totp/leak"}


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat().replace("+00:00", "Z")


def user_id() -> str:
    return str(uuid.uuid4())


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None, "both a text and an HTML part"
    return text.get_content(), html.get_content()


def by_message_id(sink: SmtpSink, envelope: Envelope) -> list[EmailMessage]:
    return [m for m in sink.messages if m["Message-ID"] == f"<{envelope.id}@portal>"]


async def test_every_event_type_sends_exactly_one_email(notifier, publish, make_user, smtp_sink: SmtpSink,
                                                        db: asyncpg.Connection, stack_env: dict[str, str],
                                                        until) -> None:
    uid, address = await make_user(name="Ada Lovelace")
    invitee, reset_to = user_id(), f"reset-{uid[:6]}@client.example"
    expected: dict[str, tuple[object, str, list[str]]] = {
        "profile.user_invited": (UserInvited(user_id=invitee, email="new@client.example", name="Grace Hopper",
                                             set_password_url="http://localhost:8080/portal/accept-invite?token=inv1",
                                             expires_at=in_future(days=3)),
                                 "new@client.example", ["Grace Hopper", "accept-invite?token=inv1", "works once"]),
        "profile.password_reset_requested": (
            PasswordResetRequested(user_id=uid, email=reset_to, reset_url="http://localhost:8080/portal/"
                                   "reset-password?token=rst1", expires_at=in_future(hours=1)),
            reset_to, ["reset-password?token=rst1", "did not ask for this"]),
        "profile.password_changed": (PasswordChanged(user_id=uid, method="change"), address,
                                     ["password of your Client Portal account was changed"]),
        "profile.impersonation_started": (
            ImpersonationStarted(user_id=uid, admin_id=user_id(), admin_name="Mallory Admin", reason="Ticket 4711"),
            address, ["Mallory Admin", "Ticket 4711"]),
        "mfa.two_factor_enabled": (TwoFactorEnabled(user_id=uid, method="webauthn", key_id="k1", name="YubiKey 5C"),
                                   address, ["now on", "YubiKey 5C"]),
        "mfa.two_factor_disabled": (TwoFactorDisabled(user_id=uid, method="totp"), address,
                                    ["now off", "authenticator app"]),
        "mfa.totp_enabled": (TotpEnabled(user_id=uid), address, ["authenticator app was set up"]),
        "mfa.totp_disabled": (TotpDisabled(user_id=uid), address, ["authenticator app was removed"]),
        "mfa.security_key_added": (SecurityKeyAdded(user_id=uid, key_id="k2", name="Office key"), address,
                                   ["Office key", "was added"]),
        "mfa.security_key_removed": (SecurityKeyRemoved(user_id=uid, key_id="k2", name="Office key"), address,
                                     ["Office key", "was removed"]),
        "mfa.security_key_renamed": (
            SecurityKeyRenamed(user_id=uid, key_id="k2", name="Desk key", old_name="Office key"),
            address, ["Office key", "Desk key", "renamed"]),
        "mfa.recovery_codes_regenerated": (RecoveryCodesRegenerated(user_id=uid, count=10), address,
                                           ["10 recovery codes", "never sent by email"]),
        "mfa.recovery_code_used": (RecoveryCodeUsed(user_id=uid, remaining=2), address,
                                   ["2 codes remain", "Warning", "running low"]),
        "mfa.reset_by_admin": (MfaResetByAdmin(user_id=uid, admin_id=user_id()), address,
                               ["reset two-factor authentication"]),
        "profile.change_undone": (ChangeUndone(user_id=uid, undone_event_id=str(uuid.uuid4()),
                                               undone_type="mfa.recovery_codes_regenerated"), address,
                                  ["recovery codes that were generated were voided", "signed out"]),
        "profile.new_device_sign_in": (
            NewDeviceSignIn(user_id=uid, session_id=str(uuid.uuid4()), ip="203.0.113.7",
                            user_agent="Mozilla/5.0 <script>x</script> Firefox/133"),
            address, ["not been used from before", "203.0.113.7", "Firefox/133"]),
        "profile.sso_linked": (SsoLinked(user_id=uid, issuer="https://login.example/tenant/v2.0"), address,
                               ["Single sign-on was linked", "https://login.example/tenant/v2.0"]),
    }
    # profile.email_changed sends two emails (to the old and the new address): test_notifier_address_change.
    assert set(expected) | {"profile.email_changed"} == set(SUBJECTS), "every emailing event is covered"
    envelopes = {t: (await publish(event, extra_data=LEAKS))[0] for t, (event, _, _) in expected.items()}

    # A sentinel published after them: once its email is in, a stray second copy of any would be too.
    [sentinel] = await publish(PasswordChanged(user_id=uid, method="reset"))
    await smtp_sink.wait_for(len(expected) + 1)
    assert len(by_message_id(smtp_sink, sentinel)) == 1
    assert len(smtp_sink.messages) == len(expected) + 1
    for event_type, (_, recipient, phrases) in expected.items():
        envelope = envelopes[event_type]
        [message] = by_message_id(smtp_sink, envelope)
        assert message["X-Portal-Event"] == event_type
        assert message["X-Envelope-To"] == recipient
        assert message["To"] == recipient
        assert message["Subject"] == SUBJECTS[event_type]
        assert message["From"] == stack_env["MAIL_FROM"]
        text, html = parts(message)
        for phrase in phrases:
            assert phrase in text, f"{event_type}: {phrase!r} in the text part"
            assert phrase in html, f"{event_type}: {phrase!r} in the HTML part"
        assert re.search(r"\w+day \d{1,2} \w+ 20\d\d at \d\d:\d\d UTC", text), "when it happened, readable"
        for leak in ("Hunter2-Leak", "JBSWY3DP", "LEAK1-CODE1", "LEAK9-CODE9", "otpauth://"):
            assert leak not in message.as_string(), f"{event_type} leaked {leak}"
        links = re.findall(r"http://localhost:8080/portal/not-me\?token=[^\s\"<]+", text)
        if event_type in ("profile.user_invited", "profile.password_reset_requested", "profile.change_undone"):
            assert not links and "not-me" not in html
            continue
        assert len(links) == 1 and links[0] in html and "This wasn't me" in html
        token = parse_qs(urlparse(links[0]).query)["token"][0]
        claims = tokens.verify(stack_env["SERVICE_AUTH_KEY"], tokens.NOT_ME, token)
        assert (claims["sub"], claims["jti"], claims["evt"]) == (uid, envelope.id, event_type)
        assert datetime.fromisoformat(claims["at"]) == datetime.fromisoformat(envelope.occurred_at)
        assert claims.get("key") == {"mfa.two_factor_enabled": "k1", "mfa.security_key_added": "k2",
                                     "mfa.security_key_removed": "k2", "mfa.security_key_renamed": "k2"}.get(event_type)

    # The sentinel's job is marked sent just after the server accepted its message: wait for that mark.
    await until(lambda: db.fetchval("SELECT status = 'sent' FROM email_jobs WHERE event_id = $1", sentinel.id))
    statuses = await db.fetch("SELECT status, count(*) FROM email_jobs WHERE event_id <> $1 GROUP BY status",
                              sentinel.id)
    assert {r["status"]: r["count"] for r in statuses} == {"sent": len(expected)}


async def test_the_address_is_the_one_current_at_send_time(notifier, publish, make_user, smtp_sink: SmtpSink,
                                                           until) -> None:
    uid, old = await make_user(name="Ada")
    new = f"new-{uid[:8]}@client.example"
    await publish(UserUpdated(user_id=uid, email=new, name="Ada L."))
    [changed] = await publish(PasswordChanged(user_id=uid, method="reset"))
    [message] = await smtp_sink.wait_for(1, address=new)
    assert message["Message-ID"] == f"<{changed.id}@portal>"
    assert "Hello Ada L.," in parts(message)[0] and "reset with a password reset link" in parts(message)[0]
    assert smtp_sink.to(old) == []


async def test_an_event_for_a_user_not_yet_projected_waits_for_the_user(notifier, publish, smtp_sink: SmtpSink,
                                                                        db: asyncpg.Connection, until) -> None:
    uid = user_id()
    [enabled] = await publish(TotpEnabled(user_id=uid))
    job = await until(lambda: db.fetchrow("SELECT * FROM email_jobs WHERE id = $1 AND last_error IS NOT NULL",
                                          enabled.id))
    assert job["status"] == "queued" and "recipient unknown" in job["last_error"]
    await publish(UserCreated(user_id=uid, email="late@client.example", name="Late Comer"))
    [message] = await smtp_sink.wait_for(1, address="late@client.example")
    assert message["Message-ID"] == f"<{enabled.id}@portal>"


async def test_a_user_name_cannot_inject_markup(notifier, publish, make_user, smtp_sink: SmtpSink) -> None:
    name = '<script>alert("x")</script> & <b>Bob</b>'
    uid, address = await make_user(name=name)
    await publish(ImpersonationStarted(user_id=uid, admin_id=user_id(), admin_name="<img src=x onerror=alert(1)>",
                                       reason='"><a href="http://evil.example">click</a>'))
    await publish(SecurityKeyAdded(user_id=uid, key_id="k", name="<iframe src=//evil.example>"))
    messages = await smtp_sink.wait_for(2, address=address)
    assert len(messages) == 2
    for message in messages:
        text, html = parts(message)
        for raw in ("<script>", "<b>Bob</b>", "<img", 'href="http://evil.example"', "<iframe"):
            assert raw not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;Bob&lt;/b&gt;" in html
        assert f"Hello {name}," in text  # plain text shows the name as it is
    html = parts(next(m for m in messages if m["X-Portal-Event"] == "profile.impersonation_started"))[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&#34;&gt;&lt;a href=&#34;http://evil.example" in html


async def test_a_reset_link_that_expired_before_sending_is_not_sent(notifier, publish, make_user,
                                                                   smtp_sink: SmtpSink, db: asyncpg.Connection,
                                                                   until) -> None:
    uid, address = await make_user()
    [stale] = await publish(PasswordResetRequested(user_id=uid, email=address, reset_url="http://x/stale",
                                                   expires_at=in_future(seconds=-1)))
    [invite] = await publish(UserInvited(user_id=user_id(), email="inv@client.example", name="I", expires_at=
                                         in_future(minutes=-5), set_password_url="http://x/stale-invite"))
    [fresh] = await publish(PasswordResetRequested(user_id=uid, email=address, reset_url="http://x/fresh",
                                                   expires_at=in_future(hours=1)))
    await smtp_sink.wait_for(1, address=address)
    await until(lambda: db.fetchval("SELECT count(*) = 2 FROM email_jobs WHERE status = 'expired'"))
    # The sink has the message a moment before the job is marked sent: wait for that too.
    await until(lambda: db.fetchval("SELECT status = 'sent' FROM email_jobs WHERE id = $1", fresh.id))
    assert [m["Message-ID"] for m in smtp_sink.messages] == [f"<{fresh.id}@portal>"]
    rows = await db.fetch("SELECT id, status FROM email_jobs ORDER BY id")
    assert {r["id"]: r["status"] for r in rows} == {stale.id: "expired", invite.id: "expired", fresh.id: "sent"}


async def test_a_hostile_user_agent_reaches_the_new_device_email_escaped_and_bounded(
        notifier, publish, make_user, smtp_sink: SmtpSink) -> None:
    uid, address = await make_user(name="Ada Lovelace")
    hostile = "<script>alert(1)</script>" + "A" * 5000
    [envelope] = await publish(NewDeviceSignIn(user_id=uid, session_id=str(uuid.uuid4()), ip="198.51.100.4",
                                               user_agent=hostile))
    # A sentinel published after it: once its email is in, a second copy of the first would be too.
    [sentinel] = await publish(PasswordChanged(user_id=uid, method="change"))
    await smtp_sink.wait_for(2)
    assert len(by_message_id(smtp_sink, sentinel)) == 1
    [message] = by_message_id(smtp_sink, envelope)
    assert len(smtp_sink.messages) == 2
    assert message["X-Portal-Event"] == "profile.new_device_sign_in" and message["To"] == address
    assert message["Subject"] == "New sign-in to your Client Portal account"
    text, html = parts(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "A" * 300 not in text and "A" * 300 not in html, "the user agent is shown truncated"
    assert "198.51.100.4" in text and "198.51.100.4" in html
    assert re.search(r"http://localhost:8080/portal/not-me\?token=[^\s\"<]+", text), "This wasn't me"
    assert len(message.as_bytes()) < 20_000, "5,000 characters of user agent do not go out whole"
