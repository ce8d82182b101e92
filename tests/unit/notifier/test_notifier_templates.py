"""Rendering emails from jobs: subjects, escaping, the signed not-me link, headers (no servers)."""

from __future__ import annotations

import email
import email.policy
import html
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
from notifier_service import emails
from notifier_service.consumers import EMAIL_EVENTS
from notifier_service.repository.jobs import Job
from portal_shared import tokens
from portal_shared.events import ALL_EVENTS

KEY = "unit-test-key"
BASE = "https://portal.example"
AT = datetime(2025, 3, 4, 14, 5, 9, tzinfo=UTC)


EVENT_ID = "0b0e6d8e-5d7e-4d4b-9a51-1f2a3b4c5d6e"


def job(type: str = "mfa.totp_enabled", *, variant: str | None = None, **data: object) -> Job:
    return Job(id=f"{EVENT_ID}.{variant}" if variant == "old" else EVENT_ID, event_id=EVENT_ID, variant=variant,
               type=type, user_id="user-1", data={"user_id": "user-1", **data}, occurred_at=AT, expires_at=None,
               attempts=1, recipient="ada@client.example", user_name="Ada")


def not_me_links(text: str) -> list[str]:
    return [w for w in text.split() if w.startswith(f"{BASE}/portal/not-me?token=")]


def claims_of(url: str) -> dict[str, object]:
    return tokens.verify(KEY, tokens.NOT_ME, parse_qs(urlparse(url).query)["token"][0])


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
    "mfa.security_key_renamed": {"key_id": "k", "name": "New", "old_name": "Old"},
    "mfa.recovery_codes_regenerated": {"count": 10}, "mfa.recovery_code_used": {"remaining": 5},
    "mfa.reset_by_admin": {"admin_id": "a"},
    "profile.email_changed": {"old_email": "ada@client.example", "new_email": "ada@new.example"},
    "profile.change_undone": {"undone_event_id": "e1", "undone_type": "mfa.totp_enabled",
                              "two_factor_disabled": False},
    "profile.new_device_sign_in": {"session_id": "s1", "ip": "203.0.113.7", "user_agent": "Firefox/133"},
    "profile.sso_linked": {"issuer": "https://login.microsoftonline.com/t/v2.0"},
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
    # It names the event so profile can undo exactly that: its type and time (ISO 8601 with offset), no key.
    assert claims["evt"] == "mfa.totp_enabled" and "key" not in claims
    assert datetime.fromisoformat(str(claims["at"])) == AT and datetime.fromisoformat(str(claims["at"])).tzinfo
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


@pytest.mark.parametrize(("event_type", "data"), [
    ("mfa.security_key_added", {"key_id": "key-7", "name": "K"}),
    ("mfa.two_factor_enabled", {"method": "webauthn", "key_id": "key-7", "name": "K"}),
])
def test_the_not_me_link_names_the_key_of_a_key_event(event_type: str, data: dict[str, object]) -> None:
    [url] = not_me_links(emails.render(job(event_type, **data), base_url=BASE, key=KEY).text)
    claims = claims_of(url)
    assert (claims["jti"], claims["evt"], claims["key"]) == (EVENT_ID, event_type, "key-7")


def test_an_address_change_tells_the_old_address_with_the_undo_link_and_the_new_one_without() -> None:
    data = SAMPLE_DATA["profile.email_changed"]
    old = emails.render(job("profile.email_changed", variant="old", **data), base_url=BASE, key=KEY)
    new = emails.render(job("profile.email_changed", variant="new", **data), base_url=BASE, key=KEY)
    for part in (old.text, old.html):
        assert "Your sign-in address was changed to" in part and "ada@new.example" in part
    [url] = not_me_links(old.text)
    assert url in old.html and "This wasn't me" in old.html
    # The old copy's job id is `{event}.old`, but the link names the event itself, which profile knows.
    assert (claims_of(url)["jti"], claims_of(url)["evt"]) == (EVENT_ID, "profile.email_changed")
    for part in (new.text, new.html):
        assert "ada@new.example" in part and "is now the sign-in address" in part
        assert "not-me" not in part and "This wasn't me" not in part
        assert "ada@client.example" not in part  # the new address is not told the old one


@pytest.mark.parametrize(("undone_type", "undone", "words"), [
    ("mfa.security_key_added", {"method": None, "name": "YubiKey"}, 'The security key "YubiKey" that was added'),
    ("mfa.security_key_added", None, "The security key that was added was removed"),
    ("mfa.totp_enabled", None, "The authenticator app that was set up was removed"),
    ("mfa.two_factor_enabled", {"method": "totp", "name": None}, "The authenticator app that was set up was removed"),
    ("mfa.two_factor_enabled", {"method": "webauthn", "name": "Key"}, 'The security key "Key" that was added'),
    ("mfa.two_factor_enabled", None, "The security key or authenticator app that was added was removed"),
    ("mfa.recovery_codes_regenerated", None, "recovery codes that were generated were voided"),
    ("profile.email_changed", None, "Your previous sign-in address was restored"),
    ("profile.impersonation_started", None, "The administrator's viewing session of your account was ended"),
])
def test_an_undo_says_in_plain_words_what_was_undone(undone_type: str, undone: dict[str, object] | None,
                                                     words: str) -> None:
    data: dict[str, object] = {"undone_event_id": "e1", "undone_type": undone_type, "two_factor_disabled": False}
    if undone is not None:
        data["undone"] = undone
    rendered = emails.render(job("profile.change_undone", **data), base_url=BASE, key=KEY)
    for part in (rendered.text, rendered.html):
        assert words in " ".join(html.unescape(part).split())
        assert "signed out" in part and "two-factor authentication is now off" not in part.lower()
    assert "not-me" not in rendered.text + rendered.html  # nothing left to undo


def test_an_undo_that_turned_two_factor_off_says_so_and_how_to_turn_it_on() -> None:
    data = {**SAMPLE_DATA["profile.change_undone"], "two_factor_disabled": True}
    rendered = emails.render(job("profile.change_undone", **data), base_url=BASE, key=KEY)
    for part in (rendered.text, rendered.html):
        flat = " ".join(part.split())
        assert "Two-factor authentication is now off" in flat
        assert "To turn it on again" in flat and f"{BASE}/portal/profile" in part


def test_an_international_address_is_written_as_utf8_for_an_smtputf8_session() -> None:
    rendered = emails.render(job(), base_url=BASE, key=KEY)
    raw = emails.build_message(job(), rendered, recipient="josé-x@client.example", mail_from="p@x.example",
                               smtputf8=True)
    assert "To: josé-x@client.example\r\n".encode() in raw
    message = email.message_from_bytes(raw, policy=email.policy.SMTPUTF8)
    assert message["To"] == "josé-x@client.example" and not message.defects


def test_the_old_address_copy_has_its_own_message_id_and_the_event_s_type() -> None:
    old = job("profile.email_changed", variant="old", **SAMPLE_DATA["profile.email_changed"])
    raw = emails.build_message(old, emails.render(old, base_url=BASE, key=KEY), recipient="ada@client.example",
                               mail_from="p@x.example")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Message-ID"] == f"<{EVENT_ID}.old@portal>"
    assert message["X-Portal-Event"] == "profile.email_changed"


def test_a_new_device_email_shows_a_hostile_user_agent_escaped_and_bounded() -> None:
    hostile = "<script>alert(1)</script>" + "A" * 5000
    rendered = emails.render(job("profile.new_device_sign_in", session_id="s", ip="198.51.100.4", user_agent=hostile),
                             base_url=BASE, key=KEY)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "A" * 300 not in rendered.text and "A" * 300 not in rendered.html
    assert "198.51.100.4" in rendered.text and "/portal/not-me?token=" in rendered.text


def test_an_sso_link_email_names_the_provider_and_offers_the_undo() -> None:
    rendered = emails.render(job("profile.sso_linked", issuer="https://idp.example/<b>"), base_url=BASE, key=KEY)
    assert "https://idp.example/<b>" in rendered.text and "https://idp.example/&lt;b&gt;" in rendered.html
    assert "/portal/not-me?token=" in rendered.html and "unlinks that account" in rendered.text


def test_a_reset_request_of_an_sso_only_account_points_to_the_company_sign_in() -> None:
    rendered = emails.render(job("profile.password_reset_requested", email="a@x.example", reset_url="",
                                 expires_at="2025-03-04T15:05:09Z", sso_issuer="https://idp.example"),
                             base_url=BASE, key=KEY)
    for part in (rendered.text, rendered.html):
        assert "Sign in with your company" in part and "https://idp.example" in part
        assert "reset-password" not in part and "To choose a new password" not in part
