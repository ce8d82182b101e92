"""SMTP delivery over one reused aiosmtplib connection, with failures sorted into retry-later and give-up."""

from __future__ import annotations

import contextlib
import email.policy
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib


class TransientSendError(Exception):
    """Try again later: the server is unreachable, timed out, or answered 4xx (RFC 5321 §4.2.1)."""


class ServerUnreachableError(TransientSendError):
    """No SMTP session could be opened (refused, timed out, no greeting): nothing to do with the message."""


class PermanentSendError(Exception):
    """The server refused this message with a 5xx reply: sending it again cannot succeed."""


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str
    port: int
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 15.0


class Mailer:
    """One SMTP session, opened on first use and reopened after any failure. Not shared between tasks."""

    def __init__(self, options: SmtpOptions) -> None:
        self._options = options
        self._smtp: aiosmtplib.SMTP | None = None
        self.unreachable_streak = 0  # connection attempts that failed in a row

    async def send(self, message: bytes | EmailMessage, *, sender: str, recipient: str) -> None:
        """Send `message` (its CRLF-ended bytes, or an EmailMessage to flatten) to one recipient."""
        if isinstance(message, EmailMessage):
            # Flattened once here with CRLF line ends (RFC 5322 §2.1); send_message would copy and flatten again.
            message = message.as_bytes(policy=email.policy.SMTP)
        reused = self._alive()
        try:
            await self._send_once(message, sender=sender, recipient=recipient)
        except TransientSendError as exc:
            if not (reused and isinstance(exc.__cause__, aiosmtplib.SMTPServerDisconnected)):
                raise
            # A reused session the server dropped while idle: reconnect once now rather than back off.
            await self._send_once(message, sender=sender, recipient=recipient)

    async def _send_once(self, message: bytes, *, sender: str, recipient: str) -> None:
        try:
            smtp = await self._connected()
        except aiosmtplib.SMTPAuthenticationError as exc:
            await self.close()
            raise TransientSendError(f"SMTP authentication failed: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            self.unreachable_streak += 1
            raise ServerUnreachableError(f"{type(exc).__name__}: {exc}") from exc
        self.unreachable_streak = 0
        try:
            await smtp.sendmail(sender, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            raise _classify(code, f"{code} {refused.message if refused else 'recipient refused'}") from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # Wrong credentials are our configuration, not the message's fault: keep it queued.
            await self.close()
            raise TransientSendError(f"SMTP authentication failed: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            # aiosmtplib sends RSET after a refused command, so the session stays usable unless it closed.
            if not self._alive():
                await self.close()
            raise _classify(exc.code, f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(Exception):
                await smtp.quit(timeout=2)
            smtp.close()

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    def _alive(self) -> bool:
        return self.connected

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        options = self._options
        smtp = aiosmtplib.SMTP(
            hostname=options.host, port=options.port, timeout=options.timeout,
            # STARTTLS only when configured: True insists on it, False never attempts it.
            start_tls=options.starttls, tls_context=ssl.create_default_context() if options.starttls else None,
            username=options.username or None, password=options.password or None,
        )
        await smtp.connect()
        self._smtp = smtp
        return smtp


def _classify(code: int, reason: str) -> Exception:
    """5xx is a permanent negative reply; 4xx (and anything unexpected) is worth another try."""
    if 500 <= code < 600:
        return PermanentSendError(reason)
    return TransientSendError(reason)
