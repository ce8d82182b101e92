"""Rendering emails from jobs: subjects, escaping, the signed not-me link, headers (no servers)."""

from __future__ import annotations

import email
import email.policy
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
from notifier_service import emails
from notifier_service.consumers import EMAIL_EVENTS
from notifier_service.repository import Job
from portal_shared import tokens
from portal_shared.events import ALL_EVENTS

KEY = "unit-test-key"
BASE = "https://portal.example"
AT = datetime(2025, 3, 4, 14, 5, 9, tzinfo=UTC)


def job(type: str = "mfa.totp_enabled", **data: object) -> Job:
    return Job(id="0b0e6d8e-5d7e-4d4b-9a51-1f2a3b4c5d6e", type=type, user_id="user-1", data={"user_id": "user-1",
               **data}, occurred_at=AT, expires_at=None, attempts=1, recipient="ada@client.example",
               user_name="Ada")


SAMPLE_DATA: dict[str, dict[str, object]] = {
    "profile.user_invited": {"email": "n@x.example", "name": "N", "set_password_url": "https://l/i",
                             "expires_at": "2025-03-07T14:05:09Z"},
    "profile.password_reset_requested": {"email": "a@x.example", "reset_url": "https://l/r",
                                         "expires_at": "2025-03-04T15:05:09Z"},
    "profile.password_changed": {"method": "change"},
    "profile.impersonation_started": {"admin_id": "a", "admin_name": "Adm", "reason": "R"},
    "mfa.two_factor_enabled": {"method": "totp", "key_id": None, "name": None},
    "mfa.two_factor_disabled": {"method": "webauthn", "key_id": "k", "name": "K"},
    "mfa.totp_enabled": {}, "mfa.totp_disabled": {},
    "mfa.security_key_added": {"key_id": "k", "name": "K"}, "mfa.security_key_removed": {"key_id": "k", "name": "K"},
    "mfa.recovery_codes_regenerated": {"count": 10}, "mfa.recovery_code_used": {"remaining": 5},
    "mfa.reset_by_admin": {"admin_id": "a"},
}


def test_every_emailing_event_has_a_subject_and_both_templates() -> None:
    assert {cls.type for cls in EMAIL_EVENTS} == set(emails.SUBJECTS) == set(SAMPLE_DATA)
    assert len(EMAIL_EVENTS) == len(ALL_EVENTS) - 2  # all but user_created / user_updated
    for event_type in emails.SUBJECTS:
        assert (emails.TEMPLATES / f"{event_type}.txt").is_file()
        assert (emails.TEMPLATES / f"{event_type}.html").is_file()


@pytest.mark.parametrize("event_type", sorted(SAMPLE_DATA))
def test_each_email_says_what_when_and_what_to_do(event_type: str) -> None:
    rendered = emails.render(job(event_type, **SAMPLE_DATA[event_type]), base_url=BASE, key=KEY)
    assert rendered.subject == emails.SUBJECTS[event_type]
    for part in (rendered.text, rendered.html):
        assert "Tuesday 4 March 2025 at 14:05 UTC" in part
        assert "If this wasn't you" in part or "not expecting" in part or "did not ask" in part
    assert "2025-03-04T14:05:09Z" in rendered.text
    assert "{{" not in rendered.text + rendered.html and "{%" not in rendered.text + rendered.html


def test_the_not_me_link_is_signed_for_this_user_and_event() -> None:
    before = time.time()
    rendered = emails.render(job(), base_url=BASE, key=KEY)
    url = next(w for w in rendered.text.split() if w.startswith(f"{BASE}/portal/not-me?token="))
    claims = tokens.verify(KEY, tokens.NOT_ME, parse_qs(urlparse(url).query)["token"][0])
    assert claims["sub"] == "user-1" and claims["jti"] == job().id
    assert before + 7 * 86400 - 5 <= claims["exp"] <= time.time() + 7 * 86400 + 1
    with pytest.raises(tokens.InvalidToken):
        tokens.verify("another-key", tokens.NOT_ME, parse_qs(urlparse(url).query)["token"][0])
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(KEY, tokens.IDENTITY, parse_qs(urlparse(url).query)["token"][0])


@pytest.mark.parametrize("event_type", ["profile.user_invited", "profile.password_reset_requested"])
def test_invitations_and_reset_requests_carry_their_link_and_no_not_me_link(event_type: str) -> None:
    rendered = emails.render(job(event_type, **SAMPLE_DATA[event_type]), base_url=BASE, key=KEY)
    link = SAMPLE_DATA[event_type].get("set_password_url") or SAMPLE_DATA[event_type]["reset_url"]
    assert link in rendered.text and f'href="{link}"' in rendered.html
    assert "not-me" not in rendered.text + rendered.html


def test_the_invitation_greets_the_invitee_by_the_name_in_the_event() -> None:
    rendered = emails.render(job("profile.user_invited", **SAMPLE_DATA["profile.user_invited"]), base_url=BASE,
                             key=KEY)
    assert "Hello N," in rendered.text


def test_html_is_escaped_and_text_is_not() -> None:
    evil = replace(job("mfa.security_key_added", key_id="k", name="<b>k</b>"), user_name="<script>x</script>")
    rendered = emails.render(evil, base_url=BASE, key=KEY)
    assert "<script>" not in rendered.html and "&lt;script&gt;x&lt;/script&gt;" in rendered.html
    assert "&lt;b&gt;k&lt;/b&gt;" in rendered.html
    assert "Hello <script>x</script>," in rendered.text and '"<b>k</b>"' in rendered.text


@pytest.mark.parametrize(("remaining", "warned"), [(0, True), (3, True), (4, False), (9, False)])
def test_a_used_recovery_code_warns_when_three_or_fewer_remain(remaining: int, warned: bool) -> None:
    rendered = emails.render(job("mfa.recovery_code_used", remaining=remaining), base_url=BASE, key=KEY)
    assert ("running low" in rendered.text) is warned and ("running low" in rendered.html) is warned


def test_no_name_means_a_plain_greeting() -> None:
    nameless = replace(job(), user_name=None)
    assert emails.render(nameless, base_url=BASE, key=KEY).text.startswith("Hello,\n")


def test_an_unknown_type_has_no_template() -> None:
    with pytest.raises(emails.TemplateMissing):
        emails.render(job("profile.user_created"), base_url=BASE, key=KEY)


def test_the_message_carries_the_contract_headers_and_both_parts() -> None:
    rendered = emails.render(job(), base_url=BASE, key=KEY)
    raw = emails.build_message(job(), rendered, recipient="ada@client.example", mail_from="Portal <p@x.example>")
    assert b"\n" not in raw.replace(b"\r\n", b"") and max(map(len, raw.split(b"\r\n"))) <= 78  # RFC 5322 §2.1
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert not message.defects and all(not p.defects for p in message.iter_parts())
    assert message["MIME-Version"] == "1.0" and message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].datetime.tzinfo is not None
    assert message["Message-ID"] == f"<{job().id}@portal>"
    assert message["X-Portal-Event"] == "mfa.totp_enabled"
    assert message["To"] == "ada@client.example" and message["From"] == "Portal <p@x.example>"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html


def test_non_ascii_names_and_headers_are_encoded_and_decode_back() -> None:
    named = replace(job("mfa.security_key_added", key_id="k", name="Ключ «1» <b>"), user_name="Zoë = Ünïcode")
    rendered = emails.render(named, base_url=BASE, key=KEY)
    raw = emails.build_message(named, rendered, recipient="zoe@client.example",
                               mail_from="Clïent Portal <no-reply@x.example>")
    assert raw.isascii()  # 8-bit content is quoted-printable, non-ASCII headers are RFC 2047 encoded words
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"] == "Clïent Portal <no-reply@x.example>"
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Hello Zoë = Ünïcode," in message.get_body(("plain",)).get_content()
    assert "Ключ «1» &lt;b&gt;" in message.get_body(("html",)).get_content()


def test_a_message_id_or_type_that_could_inject_a_header_is_refused() -> None:
    rendered = emails.render(job(), base_url=BASE, key=KEY)
    with pytest.raises(ValueError):
        emails.build_message(replace(job(), id="x>\r\nBcc: all@x.example"), rendered, recipient="a@x.example",
                             mail_from="p@x.example")


def test_a_header_injection_in_the_recipient_is_refused() -> None:
    rendered = emails.render(job(), base_url=BASE, key=KEY)
    with pytest.raises(ValueError):
        emails.build_message(job(), rendered, recipient="a@x.example\r\nBcc: all@x.example", mail_from="p@x.example")


def test_readable_utc_converts_offsets() -> None:
    in_tokyo = AT.astimezone(timezone(timedelta(hours=9)))
    assert in_tokyo.hour == 23
    assert emails.readable_utc(in_tokyo) == "Tuesday 4 March 2025 at 14:05 UTC"
