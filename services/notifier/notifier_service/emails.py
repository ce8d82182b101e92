"""Turns a claimed job into the email to send: subject, plain-text and HTML parts, headers.

Templates get only the fields they show; the event data never carries a password, a TOTP secret or a
recovery code, and nothing here adds one. HTML parts are autoescaped, so a user's name or an admin's
reason cannot inject markup.
"""

from __future__ import annotations

import binascii
import email.policy
import functools
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from portal_shared import tokens
from portal_shared.clock import iso
from portal_shared.events import (
    ChangeUndone,
    EmailChanged,
    Event,
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
    UserInvited,
)

from notifier_service.repository.jobs import Job

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOT_ME_TTL_SECONDS = 7 * 24 * 3600  # docs/internal-api.md, "Not-me links"
LOW_RECOVERY_CODES = 3

# The email of each event, keyed by its contract class (so a renamed or removed event is an import error
# here, not a silently missing email); jobs carry the type's name, hence the name-keyed views below.
SUBJECT_OF: dict[type[Event], str] = {
    UserInvited: "You're invited to the Client Portal",
    PasswordResetRequested: "Reset your Client Portal password",
    PasswordChanged: "Your Client Portal password was changed",
    ImpersonationStarted: "An administrator is viewing your Client Portal account",
    TwoFactorEnabled: "Two-factor authentication was turned on",
    TwoFactorDisabled: "Two-factor authentication was turned off",
    TotpEnabled: "An authenticator app was added to your account",
    TotpDisabled: "An authenticator app was removed from your account",
    SecurityKeyAdded: "A security key was added to your account",
    SecurityKeyRemoved: "A security key was removed from your account",
    SecurityKeyRenamed: "A security key on your account was renamed",
    RecoveryCodesRegenerated: "New recovery codes were generated for your account",
    RecoveryCodeUsed: "A recovery code was used to sign in to your account",
    MfaResetByAdmin: "An administrator reset your two-factor authentication",
    EmailChanged: "Your Client Portal sign-in address was changed",
    ChangeUndone: "A change to your Client Portal account was undone",
    NewDeviceSignIn: "New sign-in to your Client Portal account",
    SsoLinked: "Single sign-on was linked to your Client Portal account",
}
SUBJECTS: dict[str, str] = {cls.type: subject for cls, subject in SUBJECT_OF.items()}
# An invitation goes to someone with no account yet, and a reset request changes nothing by itself: for
# those "not me" means "ignore this email", not "end my sessions". A change_undone email reports the use of
# such a link: there is nothing left to undo.
WITHOUT_NOT_ME_LINK = frozenset(cls.type for cls in (UserInvited, PasswordResetRequested, ChangeUndone))
# An address change is undone from the old address's copy: the new address is the one in question.
NEW_ADDRESS_COPY = "new"

# What a "This wasn't me" undo did, by the type of the event it undid (profile's undo.py decides what is
# undoable). `undone` is what the undone event's own email named (method, key name), when the notifier has it.
_KEY_REMOVED = "The security key {name}that was added was removed: it no longer signs in to your account."
_APP_REMOVED = "The authenticator app that was set up was removed: its codes no longer sign in to your account."
UNDONE_WORDS: dict[type[Event], str] = {
    SecurityKeyAdded: _KEY_REMOVED,
    TotpEnabled: _APP_REMOVED,
    RecoveryCodesRegenerated: "The recovery codes that were generated were voided: none of them works.",
    EmailChanged: "Your previous sign-in address was restored: it is this address again.",
    ImpersonationStarted: "The administrator's viewing session of your account was ended.",
    SsoLinked: "The single sign-on account that was linked to yours was unlinked.",
}
# The undo event names the undone event by its wire type.
_UNDONE_WORDS_BY_TYPE = {cls.type: words for cls, words in UNDONE_WORDS.items()}
# Two-factor turned on by its first factor: the undone event's email knew which (its `method`).
_FIRST_FACTOR = {"webauthn": SecurityKeyAdded.type, "totp": TotpEnabled.type}

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",),
                                      default_for_string=True, default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


class TemplateMissing(LookupError):
    """No templates for this event type: a deployment error, not something a retry fixes."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def readable_utc(moment: datetime) -> str:
    """E.g. "Tuesday 4 March 2025 at 14:05 UTC" (no locale: the same for every reader)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%A} {moment.day} {moment:%B %Y} at {moment:%H:%M} UTC"


def not_me_claims(job: Job) -> dict[str, str]:
    """What the "This wasn't me" link names, so profile can undo exactly that event (docs/internal-api.md)."""
    claims = {"sub": job.user_id, "jti": job.event_id, "evt": job.type, "at": iso(job.occurred_at)}
    key_id = job.data.get("key_id")
    if isinstance(key_id, str) and key_id:
        claims["key"] = key_id
    return claims


def not_me_url(job: Job, *, base_url: str, key: str) -> str:
    token = tokens.sign(key, tokens.NOT_ME, not_me_claims(job), ttl_seconds=NOT_ME_TTL_SECONDS)
    return f"{base_url}/portal/not-me?token={quote(token, safe='')}"


def has_not_me_link(job: Job) -> bool:
    return job.type not in WITHOUT_NOT_ME_LINK and job.variant != NEW_ADDRESS_COPY


def undone_words(data: dict[str, Any]) -> str | None:
    """The sentence saying what an undo reversed, or None when it reversed nothing beyond the sign-out."""
    undone_type = data.get("undone_type")
    undone = data.get("undone") if isinstance(data.get("undone"), dict) else {}
    if undone_type == TwoFactorEnabled.type:
        undone_type = _FIRST_FACTOR.get(undone.get("method"), undone_type)
        if undone_type == TwoFactorEnabled.type:
            return "The security key or authenticator app that was added was removed."
    words = _UNDONE_WORDS_BY_TYPE.get(undone_type) if isinstance(undone_type, str) else None
    if words is None:
        return None
    name = undone.get("name")
    return words.format(name=f'"{name}" ' if isinstance(name, str) and name else "")


def render(job: Job, *, base_url: str, key: str) -> RenderedEmail:
    if job.type not in SUBJECTS:
        raise TemplateMissing(f"no email template for {job.type}")
    name = job.data.get("name") if job.type == "profile.user_invited" else job.user_name
    context: dict[str, Any] = {
        "subject": SUBJECTS[job.type],
        "name": name or None,
        "data": job.data,
        "when": readable_utc(job.occurred_at),
        "when_iso": job.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expires": readable_utc(job.expires_at) if job.expires_at else None,
        "portal_url": f"{base_url}/portal/",
        "profile_url": f"{base_url}/portal/profile",
        "not_me_url": not_me_url(job, base_url=base_url, key=key) if has_not_me_link(job) else None,
        "low_codes": LOW_RECOVERY_CODES,
        "variant": job.variant,
        "undone": undone_words(job.data) if job.type == "profile.change_undone" else None,
    }
    try:
        text = _ENV.get_template(f"{job.type}.txt").render(context)
        html = _ENV.get_template(f"{job.type}.html").render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateMissing(f"no email template {exc.name}") from None
    return RenderedEmail(subject=SUBJECTS[job.type], text=text, html=html)


def build_message(job: Job, rendered: RenderedEmail, *, recipient: str, mail_from: str,
                  smtputf8: bool = False) -> bytes:
    """The MIME message, as the bytes to send: multipart/alternative, text first (RFC 2046 §5.1.4: the
    richest part last), CRLF line ends (RFC 5322 §2.1). With `smtputf8` (a non-ASCII recipient, sent in an
    SMTPUTF8 session) the To: header carries the address as UTF-8 (RFC 6532): it has no ASCII form.

    Assembled directly rather than through `email.message`, which cost more than everything else of a
    send. The address and subject headers still go through the email package (parsed, RFC 2047-encoded,
    folded, and refused when they carry CR/LF), once per distinct value; the rest is fixed ASCII.
    """
    if not _TOKEN.match(job.id) or not _TOKEN.match(job.type):
        raise ValueError(f"job id or type cannot form a header: {job.id[:80]!r} {job.type[:80]!r}")
    text, text_encoding = _encode_part(rendered.text)
    html, html_encoding = _encode_part(rendered.html)
    boundary = _boundary(text, html)
    return b"".join((
        _header("From", mail_from), _header("To", recipient, utf8=smtputf8), _header("Subject", rendered.subject),
        b"Date: ", _date(), b"\r\nMessage-ID: <", job.id.encode(), b"@portal>\r\nX-Portal-Event: ",
        job.type.encode(), b"\r\nAuto-Submitted: auto-generated\r\n",  # RFC 3834: no auto-replies to this
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"", boundary, b"\"\r\n\r\n",
        b"--", boundary, b"\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: ",
        text_encoding, b"\r\n\r\n", text,
        b"\r\n--", boundary, b"\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: ",
        html_encoding, b"\r\n\r\n", html,
        b"\r\n--", boundary, b"--\r\n",
    ))


# Header tokens: event ids as the consumer admits them (portal_shared.ids.is_event_id, up to 128
# characters), a job id (an event id plus ".old"/".new"), and event types (dotted names).
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")
_MAX_7BIT_LINE = 78  # as the email package decides: longer lines (RFC 5322 §2.1.1 SHOULD) go quoted-printable


@functools.lru_cache(maxsize=4096)
def _header(name: str, value: str, *, utf8: bool = False) -> bytes:
    """`Name: value\r\n` as the email package writes it (SMTP policy): addresses parsed, non-ASCII
    encoded (RFC 2047) or, with `utf8`, left as UTF-8 (an address's mailbox name cannot be encoded);
    long lines folded; ValueError for a value that would inject a header."""
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    message = EmailMessage(policy=policy)
    message[name] = value
    return policy.fold_binary(name, message[name])


def _date() -> bytes:
    """RFC 5322 date of now; the same for every message within one second."""
    return _date_of(int(time.time()))


@functools.lru_cache(maxsize=2)
def _date_of(second: int) -> bytes:
    return format_datetime(datetime.fromtimestamp(second, UTC)).encode()


def _encode_part(content: str) -> tuple[bytes, bytes]:
    """A text part's body with CRLF line ends, and its Content-Transfer-Encoding: 7bit when it is ASCII
    with lines short enough, else quoted-printable (RFC 2045 §6.7) of its UTF-8."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if content.isascii() and max(map(len, lines)) <= _MAX_7BIT_LINE and "\0" not in content:
        return "\r\n".join(lines).encode("ascii"), b"7bit"
    encoded = binascii.b2a_qp("\n".join(lines).encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n"), b"quoted-printable"


def _boundary(*parts: bytes) -> bytes:
    while True:
        boundary = b"==portal-alt-" + secrets.token_hex(12).encode()
        if not any(boundary in part for part in parts):
            return boundary
