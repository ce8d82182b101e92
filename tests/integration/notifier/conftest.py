"""Fixtures for the notifier's integration tests: publish real events, run the real service, read its jobs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from portal_devstack.process import free_port
from portal_shared.events import Envelope, Event, UserCreated, encode

from tests.support.services import running_service
from tests.support.smtp import SinkHandler, SmtpSink

# Short timings so retries and leases play out within a test.
FAST = {
    "NOTIFIER_RETRY_BASE_SECONDS": "0.2",
    "NOTIFIER_RETRY_MAX_SECONDS": "1.5",
    "NOTIFIER_POLL_SECONDS": "0.1",
    "NOTIFIER_LEASE_SECONDS": "5",
    "SMTP_TIMEOUT_SECONDS": "5",
}

Publish = Callable[..., Awaitable[list[Envelope]]]


def user_id() -> str:
    return str(uuid.uuid4())


def body(envelope: Envelope, extra_data: dict[str, Any] | None) -> bytes:
    """The wire body; extra_data adds fields a careless producer might put in `data`."""
    if not extra_data:
        return encode(envelope)
    raw = envelope.to_dict()
    raw["data"] = {**raw["data"], **extra_data}
    return json.dumps(raw).encode()


@pytest.fixture
async def publish(stack_env: dict[str, str]) -> AsyncIterator[Publish]:
    """publish(*events or envelopes, raw=None): persistent, confirmed publishes to portal.events."""
    connection = await aio_pika.connect(stack_env["AMQP_URL"])
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange("portal.events", aio_pika.ExchangeType.TOPIC, durable=True)

    async def send(*items: Event | Envelope, raw: tuple[str, bytes] | None = None,
                   extra_data: dict[str, Any] | None = None) -> list[Envelope]:
        envelopes = [i if isinstance(i, Envelope) else Envelope.wrap(i, source="test") for i in items]
        messages = [(e.type, aio_pika.Message(body(e, extra_data), message_id=e.id, type=e.type,
                                              content_type="application/json",
                                              delivery_mode=aio_pika.DeliveryMode.PERSISTENT)) for e in envelopes]
        if raw is not None:
            messages.append((raw[0], aio_pika.Message(raw[1], message_id=str(uuid.uuid4()), type=raw[0],
                                                      delivery_mode=aio_pika.DeliveryMode.PERSISTENT)))
        await asyncio.gather(*(exchange.publish(m, routing_key=key) for key, m in messages))
        return envelopes

    yield send
    await connection.close()


@pytest.fixture
async def db(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack_env["NOTIFIER_DATABASE_URL"], server_settings={"search_path": "notifier"})
    yield conn
    await conn.close()


@pytest.fixture
async def notifier(stack_env: dict[str, str]) -> AsyncIterator[TestClient]:
    async with running_service("notifier", stack_env, **FAST) as client:
        yield client


@pytest.fixture
def make_user(publish: Publish, db: asyncpg.Connection) -> Callable[..., Awaitable[tuple[str, str]]]:
    """Publish profile.user_created and wait until the projection has it; returns (user_id, email)."""

    async def create(name: str = "Ada Lovelace", email: str | None = None) -> tuple[str, str]:
        uid = user_id()
        address = email or f"user-{uid[:8]}@client.example"
        await publish(UserCreated(user_id=uid, email=address, name=name))
        await wait_until(lambda: db.fetchval("SELECT 1 FROM users WHERE user_id = $1", uid))
        return uid, address

    return create


async def wait_until(check: Callable[[], Awaitable[Any]], within: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail the test at the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(interval)


@pytest.fixture
def until() -> Callable[..., Awaitable[Any]]:
    return wait_until


@dataclass
class ScriptedHandler(SinkHandler):
    """The shared sink's handler, plus per-recipient replies (e.g. "550 5.1.1 no such user")."""

    refuse: dict[str, str] = field(default_factory=dict)  # address substring -> SMTP reply
    delay: float = 0.0  # seconds before accepting each message (a slow server)
    drop: dict[str, int] = field(default_factory=dict)  # address substring -> times to hang up after its DATA
    mail_options: dict[str, list[str]] = field(default_factory=dict)  # recipient -> its MAIL FROM parameters
    mail_replies: list[str] = field(default_factory=list)  # the next MAIL commands get these replies, in turn

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str,
                          mail_options: list[str]) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        for needle, times in self.drop.items():
            if times > 0 and any(needle in rcpt for rcpt in envelope.rcpt_tos):
                # Hang up with the whole message received and no reply: the client cannot know its fate.
                self.drop[needle] = times - 1
                assert server.transport is not None
                server.transport.abort()
                return "421 closing"  # never reaches the client
        for rcpt in envelope.rcpt_tos:
            self.mail_options[rcpt] = list(envelope.mail_options)
        return await super().handle_DATA(server, session, envelope)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        for needle, reply in self.refuse.items():
            if needle in address:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


class ScriptedSink(SmtpSink):
    """An SMTP sink of the test's own, on its own port, started when the test says so."""

    def __init__(self, port: int, *, smtputf8: bool = False) -> None:
        self.handler = ScriptedHandler()
        self.port = port
        # aiosmtpd offers SMTPUTF8 (RFC 6531) only when asked to, like many real servers.
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
        self.running = False

    def start(self) -> None:
        super().start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            super().stop()
            self.running = False


@pytest.fixture
def own_sink() -> Iterator[ScriptedSink]:
    """Not started: start it in the test (a notifier pointed at it meanwhile meets a closed port)."""
    sink = ScriptedSink(free_port())
    yield sink
    sink.stop()


@pytest.fixture
def utf8_sink() -> Iterator[ScriptedSink]:
    """Like own_sink, but a server that offers SMTPUTF8."""
    sink = ScriptedSink(free_port(), smtputf8=True)
    yield sink
    sink.stop()
