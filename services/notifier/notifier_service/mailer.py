"""SMTP delivery over one reused aiosmtplib connection, with failures sorted into retry-later and give-up.

A reused connection is only as good as the state of its conversation. So the transaction is driven step
by step (MAIL, RCPT, DATA) and after a failure the session is either reset or dropped before the next job:

- a well-formed reply (4xx/5xx) leaves the session in a known state: RSET ends the transaction and the
  connection is kept (dropped when even RSET fails);
- anything else (a timeout, a dropped connection, an address the library cannot write, a bug) leaves it
  in an unknown state, perhaps mid-transaction: the connection is dropped, and the next job reconnects.
  Reusing it is what turned one bad address into "503 nested MAIL command" for everyone after it.

Only a job's own permanent reply (a 5xx to its RCPT or to its content) fails that job; a refused MAIL FROM
or a sequence error (503) is the session's or our configuration's fault and is retried.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass

import aiosmtplib
from opentelemetry.trace import SpanKind, Status, StatusCode
from portal_shared import tracing

BAD_SEQUENCE = 503      # RFC 5321 §4.2.4: the session's state, never the message's fault
SERVICE_CLOSING = 421   # the server is closing the connection


class TransientSendError(Exception):
    """Try again later: the server is unreachable, timed out, dropped the session, or answered 4xx."""


class ServerUnreachableError(TransientSendError):
    """No SMTP session could be opened (refused, timed out, no greeting): nothing to do with the message."""


class PermanentSendError(Exception):
    """This job can never be sent as it is: the server refused its recipient or content with a 5xx reply,
    or its address cannot be carried by this server."""


class _StaleSession(Exception):
    """A reused session turned out closed at its first command: nothing of the message reached the server."""


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str
    port: int
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 15.0


class Mailer:
    """One SMTP session, opened on first use and reset or reopened after any failure. Not shared between tasks."""

    def __init__(self, options: SmtpOptions) -> None:
        self._options = options
        self._smtp: aiosmtplib.SMTP | None = None
        self.unreachable_streak = 0  # connection attempts that failed in a row

    async def send(self, message: bytes, *, sender: str, recipient: str, smtputf8: bool = False) -> None:
        """Send `message` (its CRLF-ended bytes) to one recipient; `smtputf8` when the address is not ASCII.

        One CLIENT span, a child of the job's: the server and whether the session was reused; never the
        addresses or the message, and on failure only the error's type (its text may quote an address)."""
        attributes = {"server.address": self._options.host, "server.port": self._options.port,
                      "smtp.session_reused": self.connected}
        with tracing.tracer("notifier").start_as_current_span(
                "smtp send", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
                set_status_on_exception=False) as span:
            try:
                try:
                    await self._send_once(message, sender=sender, recipient=recipient, smtputf8=smtputf8,
                                          reused=self.connected)
                except _StaleSession:
                    # The server dropped the session while it sat idle: reconnect once now rather than back off.
                    await self._send_once(message, sender=sender, recipient=recipient, smtputf8=smtputf8,
                                          reused=False)
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    async def _send_once(self, message: bytes, *, sender: str, recipient: str, smtputf8: bool,
                         reused: bool) -> None:
        smtp = await self._session()
        if smtputf8 and not smtp.supports_extension("smtputf8"):
            # Checked before MAIL, so the session stays clean for the next job.
            raise PermanentSendError(f"cannot be sent: the address {recipient} is not ASCII and needs SMTPUTF8, "
                                     "which the SMTP server does not offer")
        encoding = "utf-8" if smtputf8 else "ascii"
        stage = "MAIL"
        try:
            await smtp.mail(sender, options=["SMTPUTF8"] if smtputf8 else [], encoding=encoding)
            stage = "RCPT"
            await smtp.rcpt(recipient, encoding=encoding)
            stage = "DATA"
            await smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            error, keep = classify_reply(stage, exc.code, f"{exc.code} {exc.message}")
            if keep:
                await self._reset_transaction()
            else:
                self.drop()
            raise error from exc
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            self.drop()
            if reused and stage == "MAIL":
                raise _StaleSession from exc
            raise TransientSendError(f"the SMTP server closed the connection at {stage}: {exc}") from exc
        except (UnicodeError, ValueError) as exc:
            # aiosmtplib refuses an address it cannot write on a command line, possibly after MAIL went out.
            self.drop()
            raise PermanentSendError(f"cannot be sent: the address {recipient!r} cannot be written in an SMTP "
                                     f"command ({type(exc).__name__})") from exc
        except Exception as exc:  # a timeout, a broken socket, anything: the conversation's state is unknown
            self.drop()
            raise TransientSendError(f"{type(exc).__name__} at {stage}: {exc}") from exc

    async def _reset_transaction(self) -> None:
        """RSET after a refused command, so the next MAIL starts a fresh transaction; drop the session if not."""
        smtp = self._smtp
        if smtp is None:
            return
        try:
            await smtp.rset()
        except Exception:  # the session is no longer in a known state
            self.drop()

    def drop(self) -> None:
        """Forget the session without QUIT: mid-DATA, a QUIT would be read as part of the message."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        """End the session politely (QUIT), e.g. when the worker stops."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(Exception):
                await smtp.quit(timeout=2)
            smtp.close()

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def _session(self) -> aiosmtplib.SMTP:
        """The open, greeted session; a new one after a failure. ServerUnreachableError when none opens."""
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self.drop()
        options = self._options
        smtp = aiosmtplib.SMTP(
            hostname=options.host, port=options.port, timeout=options.timeout,
            # STARTTLS only when configured: True insists on it, False never attempts it.
            start_tls=options.starttls, tls_context=ssl.create_default_context() if options.starttls else None,
            username=options.username or None, password=options.password or None,
        )
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:  # greet now, so the extensions (SMTPUTF8) are known before MAIL
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()  # an old server without ESMTP: no extensions
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            # Wrong credentials are our configuration, not the message's fault: keep it queued.
            raise TransientSendError(f"SMTP authentication failed: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            self.unreachable_streak += 1
            raise ServerUnreachableError(f"{type(exc).__name__}: {exc}") from exc
        self.unreachable_streak = 0
        self._smtp = smtp
        return smtp


def classify_reply(stage: str, code: int, reason: str) -> tuple[Exception, bool]:
    """The error a refused `stage` (MAIL, RCPT, DATA) stands for, and whether the session can be kept.

    A 5xx to RCPT or DATA is this job's own (RFC 5321 §4.2.1): permanent. A 5xx to MAIL FROM refuses our
    sender, which no job can fix, and 503 means the session lost track: both are retried. 421 and replies
    that are not 4xx/5xx leave the session unusable.
    """
    keep = 400 <= code < 600 and code != SERVICE_CLOSING and code != BAD_SEQUENCE
    if stage in ("RCPT", "DATA") and 500 <= code < 600 and code != BAD_SEQUENCE:
        return PermanentSendError(f"refused by the SMTP server at {stage}: {reason}"), keep
    return TransientSendError(reason), keep
