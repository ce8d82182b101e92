"""Turns a claimed job into the email to send: subject, plain-text and HTML parts, headers.

Templates get only the fields they show; the event data never carries a password, a TOTP secret or a
recovery code, and nothing here adds one. HTML parts are autoescaped, so a user's name or an admin's
reason cannot inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from portal_shared import tokens

from notifier_service.repository import Job

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOT_ME_TTL_SECONDS = 7 * 24 * 3600  # docs/internal-api.md, "Not-me links"
LOW_RECOVERY_CODES = 3

SUBJECTS: dict[str, str] = {
    "profile.user_invited": "You're invited to the Client Portal",
    "profile.password_reset_requested": "Reset your Client Portal password",
    "profile.password_changed": "Your Client Portal password was changed",
    "profile.impersonation_started": "An administrator is viewing your Client Portal account",
    "mfa.two_factor_enabled": "Two-factor authentication was turned on",
    "mfa.two_factor_disabled": "Two-factor authentication was turned off",
    "mfa.totp_enabled": "An authenticator app was added to your account",
    "mfa.totp_disabled": "An authenticator app was removed from your account",
    "mfa.security_key_added": "A security key was added to your account",
    "mfa.security_key_removed": "A security key was removed from your account",
    "mfa.recovery_codes_regenerated": "New recovery codes were generated for your account",
    "mfa.recovery_code_used": "A recovery code was used to sign in to your account",
    "mfa.reset_by_admin": "An administrator reset your two-factor authentication",
}
# An invitation goes to someone with no account yet, and a reset request changes nothing by itself: for
# those "not me" means "ignore this email", not "end my sessions".
WITHOUT_NOT_ME_LINK = frozenset({"profile.user_invited", "profile.password_reset_requested"})

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


def not_me_url(job: Job, *, base_url: str, key: str) -> str:
    token = tokens.sign(key, tokens.NOT_ME, {"sub": job.user_id, "jti": job.id}, ttl_seconds=NOT_ME_TTL_SECONDS)
    return f"{base_url}/portal/not-me?token={quote(token, safe='')}"


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
        "not_me_url": None if job.type in WITHOUT_NOT_ME_LINK else not_me_url(job, base_url=base_url, key=key),
        "low_codes": LOW_RECOVERY_CODES,
    }
    try:
        text = _ENV.get_template(f"{job.type}.txt").render(context)
        html = _ENV.get_template(f"{job.type}.html").render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateMissing(f"no email template {exc.name}") from None
    return RenderedEmail(subject=SUBJECTS[job.type], text=text, html=html)


def build_message(job: Job, rendered: RenderedEmail, *, recipient: str, mail_from: str) -> EmailMessage:
    """The MIME message: multipart/alternative, text first (RFC 2046 §5.1.4: the richest part last)."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{job.id}@portal>"
    message["X-Portal-Event"] = job.type
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
