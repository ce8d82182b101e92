"""Dead letters hold no usable token: what the consumer gives up on, and what the broker dead-letters raw."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
import asyncpg
import pytest
import structlog
from portal_shared import broker, consumer, dlq
from portal_shared.consumer import PermanentError
from portal_shared.dlq import list_dead_letters, replay_dead_letters
from portal_shared.events import Envelope, encode
from portal_shared.events.contracts import PasswordResetRequested, UserInvited

from tests.integration.backbone.backbone_support import (
    SERVICE,
    Backbone,
    dead_letter_count,
    wait_until,
)

SECRET = "s3cret-reset-token"
RESET_URL = f"http://localhost:8080/portal/reset-password?token={SECRET}"
INVITE_URL = f"http://localhost:8080/portal/accept-invite?token={SECRET}-invite"


def _reset(user_id: str) -> Envelope:
    return Envelope.wrap(PasswordResetRequested(user_id=user_id, email=f"{user_id}@client.example",
                                                reset_url=RESET_URL, expires_at="2030-01-01T00:00:00Z"),
                         source="test")


async def _publish(backbone: Backbone, body: bytes, *, message_id: str, type_: str) -> None:
    channel = await backbone.connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await broker.declare_exchange(channel)
    await exchange.publish(aio_pika.Message(body, message_id=message_id, type=type_,
                                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                           routing_key=type_, mandatory=True)
    await channel.close()


async def _peek(backbone: Backbone) -> list[tuple[str | None, bytes, dict[str, Any]]]:
    """Every message in the dead-letter queue as it is stored: (message id, body, headers); left in place."""
    channel = await backbone.connection.channel()
    seen: list[tuple[str | None, bytes, dict[str, Any]]] = []
    try:
        queue = await channel.declare_queue(broker.dead_letter_queue_name(SERVICE), passive=True)
        for _ in range(queue.declaration_result.message_count or 0):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            seen.append((message.message_id, message.body, dict(message.headers or {})))
    finally:
        await channel.close()  # unacked: all back in the queue

    async def returned() -> bool:  # the broker requeues them just after the close, not with it
        return await dead_letter_count(backbone) >= len(seen)

    await wait_until(returned, within=5, what="the peeked dead letters back in their queue")
    return seen


def _no_token(body: bytes) -> None:
    assert SECRET.encode() not in body, body
    assert b"reset_url" not in body and b"set_password_url" not in body, body


async def test_a_poison_reset_event_is_dead_lettered_without_its_link(backbone: Backbone) -> None:
    handled: list[str] = []

    async def handler(conn: asyncpg.Connection, envelope: Envelope) -> None:
        handled.append(envelope.event.user_id)
        if envelope.event.user_id == "refused":
            raise PermanentError(f"refused: {envelope.event.reset_url}")  # type: ignore[attr-defined]
        raise RuntimeError("this event always fails")

    await backbone.start_consumer({PasswordResetRequested.type: handler, UserInvited.type: handler},
                                  delivery_limit=2)
    refused, failing = _reset("refused"), _reset("failing")
    invite = Envelope.wrap(UserInvited(user_id="failing", email="i@client.example", name="I",
                                       set_password_url=INVITE_URL, expires_at="2030-01-01T00:00:00Z"), source="test")

    async def three_dead() -> bool:
        return await dead_letter_count(backbone) >= 3

    with structlog.testing.capture_logs() as logged:
        for envelope in (refused, failing, invite):
            body = encode(envelope)
            assert SECRET.encode() in body  # the published event carries its link
            await _publish(backbone, body, message_id=envelope.id, type_=envelope.type)
        await wait_until(three_dead, within=15, what="three dead letters")
    assert any(entry["event"] == "event_dead_lettered" for entry in logged), logged
    assert SECRET not in json.dumps(logged, default=str)  # the refusal quoted the link: not in the log line
    stored = {message_id: (body, headers) for message_id, body, headers in await _peek(backbone)}
    assert set(stored) == {refused.id, failing.id, invite.id}
    for envelope in (refused, failing, invite):
        body, headers = stored[envelope.id]
        _no_token(body)
        kept = json.loads(body)
        assert kept["id"] == envelope.id and kept["type"] == envelope.type
        assert kept["data"]["user_id"] == envelope.event.user_id and kept["data"]["expires_at"]
        assert SECRET not in json.dumps(headers, default=str)  # not in the recorded reason either
    assert stored[refused.id][1][dlq.CAUSE_HEADER] == "permanent"
    assert stored[failing.id][1][dlq.CAUSE_HEADER] == "delivery_limit"
    letters = {letter.message_id: letter for letter in await list_dead_letters(backbone.amqp_url, SERVICE)}
    assert letters[refused.id].reason == "rejected" and letters[refused.id].queue == broker.queue_name(SERVICE)
    assert letters[failing.id].cause == "delivery_limit" and letters[failing.id].count == 1

    # Replayed, a scrubbed reset event cannot send a broken link: it dies again as malformed, unhandled.
    calls = len(handled)
    assert await replay_dead_letters(backbone.amqp_url, SERVICE, message_id=refused.id) == 1

    async def malformed_again() -> bool:
        return any(h.get(dlq.CAUSE_HEADER) == "malformed" for _, _, h in await _peek(backbone))

    await wait_until(malformed_again, within=10, what="the replayed reset dead-lettered again")
    assert len(handled) == calls
    for _, body, _ in await _peek(backbone):
        _no_token(body)


async def test_malformed_messages_lose_their_tokens(backbone: Backbone) -> None:
    await backbone.start_consumer({PasswordResetRequested.type: _never})
    future = json.loads(encode(_reset("u1")))
    future["version"] = 99  # a version this code does not know, with its link
    await _publish(backbone, json.dumps(future).encode(), message_id="m-future", type_=PasswordResetRequested.type)
    await _publish(backbone, f"not json {RESET_URL}&x=1".encode(), message_id="m-junk",
                   type_=PasswordResetRequested.type)

    async def two_dead() -> bool:
        return await dead_letter_count(backbone) >= 2

    await wait_until(two_dead, within=10, what="two dead letters")
    stored = {message_id: (body, headers) for message_id, body, headers in await _peek(backbone)}
    assert set(stored) == {"m-future", "m-junk"}
    for body, headers in stored.values():
        assert SECRET.encode() not in body
        assert headers[dlq.CAUSE_HEADER] == "malformed"
    assert json.loads(stored["m-future"][0])["data"]["email"] == "u1@client.example"
    assert stored["m-junk"][0] == b"not json http://localhost:8080/portal/reset-password?token=[removed]&x=1"


async def _never(conn: asyncpg.Connection, envelope: Envelope) -> None:
    raise AssertionError("a malformed message reached the handler")


async def test_what_the_broker_dead_letters_raw_is_scrubbed_at_consumer_start_and_by_the_dlq_command(
        backbone: Backbone) -> None:
    """The x-delivery-limit backstop (a consumer that never settles, as a crash loop) dead-letters the raw
    message; the next consumer start rewrites it, and so does `dlq list`."""
    first = await backbone.start_consumer({PasswordResetRequested.type: _never}, delivery_limit=1)
    await first.stop()
    channel = await backbone.connection.channel()
    queue = await channel.get_queue(broker.queue_name(SERVICE))

    async def give_back(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.nack(requeue=True)

    tag = await queue.consume(give_back)
    crashed = _reset("crash-loop")
    await _publish(backbone, encode(crashed), message_id=crashed.id, type_=crashed.type)

    async def one_dead() -> bool:
        return await dead_letter_count(backbone) >= 1

    await wait_until(one_dead, within=10, what="the broker to dead-letter it")
    [(_, raw, _)] = await _peek(backbone)
    assert SECRET.encode() in raw  # raw, as the broker moved it

    second = await backbone.start_consumer({PasswordResetRequested.type: _never}, delivery_limit=1)

    # Not polled with _peek: a message another channel holds is not there for the scrub to see.
    await asyncio.wait_for(second.scrub_finished(), 10)
    [(message_id, body, headers)] = await _peek(backbone)
    assert message_id == crashed.id and headers[dlq.SCRUBBED_HEADER]
    _no_token(body)
    [letter] = await list_dead_letters(backbone.amqp_url, SERVICE)
    assert letter.reason == "delivery_limit" and letter.queue == broker.queue_name(SERVICE)  # x-death kept

    # Another one while the consumer runs: `dlq list` scrubs before it shows anything.
    await second.stop()  # only the consumer that never settles is left
    again = _reset("crash-loop-2")
    await _publish(backbone, encode(again), message_id=again.id, type_=again.type)

    async def two_dead() -> bool:
        return await dead_letter_count(backbone) >= 2

    await wait_until(two_dead, within=10, what="the second raw dead letter")
    letters = await list_dead_letters(backbone.amqp_url, SERVICE)
    assert sorted(str(letter.message_id) for letter in letters) == sorted([crashed.id, again.id])
    assert all(SECRET not in letter.body for letter in letters)
    for _, body, _ in await _peek(backbone):
        _no_token(body)
    await queue.cancel(tag)
    await channel.close()


async def test_a_copy_that_cannot_be_published_falls_back_to_the_broker(
        backbone: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is lost when the scrubbed copy fails: the original is rejected to the dead-letter queue."""
    async def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("the broker did not confirm the copy")

    monkeypatch.setattr(consumer, "publish_dead_letter", refuse)

    async def permanent(conn: asyncpg.Connection, envelope: Envelope) -> None:
        raise PermanentError("refused")

    await backbone.start_consumer({PasswordResetRequested.type: permanent})
    envelope = _reset("fallback")
    await _publish(backbone, encode(envelope), message_id=envelope.id, type_=envelope.type)

    async def one_dead() -> bool:
        return await dead_letter_count(backbone) >= 1

    await wait_until(one_dead, within=10, what="the broker's dead letter")
    [letter] = await list_dead_letters(backbone.amqp_url, SERVICE)  # scrubbed on the way
    assert letter.message_id == envelope.id and letter.reason == "rejected"
    [(_, body, _)] = await _peek(backbone)
    _no_token(body)
