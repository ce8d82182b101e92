"""An aiosmtpd SMTP server on a loopback port that keeps every message it accepts, for assertions."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    reject_with: str | None = None  # e.g. "550 no such user" or "451 try later"
    arrived: asyncio.Event | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reject_with:
            return self.reject_with
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


class SmtpSink:
    def __init__(self, port: int) -> None:
        self.handler = SinkHandler()
        self.port = port
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in m["X-Envelope-To"].lower()]

    async def wait_for(self, count: int, timeout: float = 15.0, address: str | None = None) -> list[EmailMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = self.to(address) if address else self.messages
            if len(found) >= count or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.05)
