"""The idempotent consumer, dead letters and the operator command, against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys

import aio_pika
import asyncpg
from opentelemetry import trace
from portal_shared import broker, inbox
from portal_shared.consumer import OneStatement, PermanentError, Statement
from portal_shared.dlq import list_dead_letters, replay_dead_letters
from portal_shared.events import Envelope, encode
from portal_shared.events.contracts import TotpDisabled, TotpEnabled

from tests.integration.backbone.backbone_support import (
    SERVICE,
    Backbone,
    dead_letter_count,
    metric,
    record_effect,
    wait_until,
)


async def _publish(backbone: Backbone, body: bytes, *, message_id: str | None, type_: str) -> None:
    channel = await backbone.connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await broker.declare_exchange(channel)
    await exchange.publish(aio_pika.Message(body, message_id=message_id, type=type_,
                                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                           routing_key=type_, mandatory=True)
    await channel.close()


async def _publish_event(backbone: Backbone, envelope: Envelope) -> None:
    await _publish(backbone, encode(envelope), message_id=envelope.id, type_=envelope.type)


async def _delivered_twice_has_one_effect(backbone: Backbone) -> None:
    duplicates_before = metric("portal_events_duplicates_total", type="mfa.totp_enabled")
    envelope = Envelope.wrap(TotpEnabled(user_id="u1"), source="test")
    await _publish_event(backbone, envelope)
    await _publish_event(backbone, envelope)
    await wait_until(lambda: _done(backbone, duplicates_before), within=10, what="both deliveries handled")
    assert await backbone.effects() == (1, 1)
    assert await backbone.pool.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", envelope.id) == 1


async def test_same_message_delivered_twice_has_one_effect(backbone: Backbone) -> None:
    await backbone.start_consumer()
    await _delivered_twice_has_one_effect(backbone)


# A one-statement handler: the same effect row as record_effect, written with the inbox claim.
_EFFECT_STATEMENT = """
INSERT INTO effects (message_id, type, user_id)
SELECT $4::text, $5::text, $6::text WHERE EXISTS (SELECT 1 FROM claimed)
"""


def _effect_statement(envelope: Envelope) -> Statement:
    if getattr(envelope.event, "user_id", "") == "poison":
        raise PermanentError("a user the test refuses")
    return Statement(_EFFECT_STATEMENT, (envelope.id, envelope.type, envelope.event.user_id))  # type: ignore[attr-defined]


async def test_one_statement_handler_claims_its_inbox_row_in_the_same_statement(backbone: Backbone) -> None:
    await backbone.start_consumer({TotpEnabled.type: OneStatement(_effect_statement)})
    await _delivered_twice_has_one_effect(backbone)

    # A handler that refuses the event: dead-lettered, and no inbox row claims it (a replay would run it).
    dead_before = await dead_letter_count(backbone)
    refused = Envelope.wrap(TotpEnabled(user_id="poison"), source="test")
    await _publish_event(backbone, refused)
    await wait_until(lambda: _dlq_at_least(backbone, dead_before + 1), within=10, what="the refusal dead-lettered")
    assert await backbone.pool.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", refused.id) == 0
    assert await backbone.effects() == (1, 1)


async def _done(backbone: Backbone, duplicates_before: float) -> bool:
    return metric("portal_events_duplicates_total", type="mfa.totp_enabled") > duplicates_before


async def test_poison_message_is_dead_lettered_after_its_deliveries_while_others_flow(backbone: Backbone) -> None:
    attempts: list[str] = []

    async def handler(conn: asyncpg.Connection, envelope: Envelope) -> None:
        if envelope.event.user_id == "poison":
            attempts.append(envelope.id)
            raise RuntimeError("this event always fails")
        await record_effect(conn, envelope)

    await backbone.start_consumer({TotpEnabled.type: handler}, prefetch=4, delivery_limit=3,
                                  retry_base_seconds=0.2)
    poison = await backbone.write(TotpEnabled(user_id="poison"))
    await backbone.write_many(30)
    backbone.start_relay(poll_seconds=0.1)

    # The good messages behind the poison do not wait for its retries.
    await wait_until(lambda: _effects_at_least(backbone, 30), within=10, what="the good messages")
    await wait_until(lambda: _dlq_at_least(backbone, 1), within=15, what="the poison message dead-lettered")
    assert attempts == [poison.id] * 3
    assert await backbone.effects() == (30, 30)
    [letter] = await list_dead_letters(backbone.amqp_url, SERVICE)
    assert letter.message_id == poison.id and letter.type == "mfa.totp_enabled"
    assert letter.reason == "rejected" and letter.queue == broker.queue_name(SERVICE)
    assert await backbone.pool.fetchval("SELECT count(*) FROM inbox WHERE message_id = $1", poison.id) == 0


async def _effects_at_least(backbone: Backbone, count: int) -> bool:
    return (await backbone.effects())[0] >= count


async def _dlq_at_least(backbone: Backbone, count: int) -> bool:
    return await dead_letter_count(backbone) >= count


async def test_queue_delivery_limit_dead_letters_a_message_nobody_settles(backbone: Backbone) -> None:
    """The x-delivery-limit backstop: a consumer that keeps giving the message back (as a crash loop
    would) cannot keep it forever."""
    consumer = await backbone.start_consumer(delivery_limit=2)
    await consumer.stop()  # the topology exists; now a consumer that only ever requeues
    channel = await backbone.connection.channel()
    queue = await channel.get_queue(broker.queue_name(SERVICE))
    deliveries = 0

    async def give_back(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal deliveries
        deliveries += 1
        await message.nack(requeue=True)

    await queue.consume(give_back)
    envelope = Envelope.wrap(TotpEnabled(user_id="u1"), source="test")
    await _publish_event(backbone, envelope)
    await wait_until(lambda: _dlq_at_least(backbone, 1), within=10, what="the broker to dead-letter it")
    await channel.close()
    assert deliveries == 3  # the first delivery and two redeliveries
    [letter] = await list_dead_letters(backbone.amqp_url, SERVICE)
    assert letter.message_id == envelope.id and letter.reason == "delivery_limit"


async def test_malformed_messages_go_to_the_dead_letter_queue_at_once(backbone: Backbone) -> None:
    calls = 0

    async def handler(conn: asyncpg.Connection, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1

    # Long retry delays: anything retried instead of rejected would not reach the DLQ in time.
    await backbone.start_consumer({TotpEnabled.type: handler, TotpDisabled.type: handler},
                                  retry_base_seconds=30)
    malformed_before = metric("portal_events_dead_lettered_total", reason="malformed")
    await _publish(backbone, b"not json", message_id="m-1", type_=TotpEnabled.type)
    await _publish(backbone, b'{"id": "m-2", "type": "mfa.totp_enabled", "version": 99, "data": {}}',
                   message_id="m-2", type_=TotpEnabled.type)
    await _publish(backbone, b'{"id": "m-3", "type": "mfa.totp_disabled", "version": 1, "data": {}}',
                   message_id="m-3", type_=TotpDisabled.type)
    await wait_until(lambda: _dlq_at_least(backbone, 3), within=5, what="three dead letters")
    assert calls == 0
    assert metric("portal_events_dead_lettered_total", reason="malformed") == malformed_before + 3
    letters = await list_dead_letters(backbone.amqp_url, SERVICE)
    assert sorted(letter.message_id for letter in letters) == ["m-1", "m-2", "m-3"]
    assert {letter.count for letter in letters} == {1}


async def test_dead_letters_are_listed_and_replayed_once(backbone: Backbone) -> None:
    broken = {"on": True}

    async def handler(conn: asyncpg.Connection, envelope: Envelope) -> None:
        if broken["on"]:
            raise RuntimeError("downstream bug")
        await record_effect(conn, envelope)

    await backbone.start_consumer({TotpEnabled.type: handler}, delivery_limit=1)
    first = await backbone.write(TotpEnabled(user_id="a"))
    second = await backbone.write(TotpEnabled(user_id="b"))
    await _publish(backbone, b"garbage", message_id="junk", type_=TotpEnabled.type)
    backbone.start_relay(poll_seconds=0.1)
    await wait_until(lambda: _dlq_at_least(backbone, 3), within=10, what="three dead letters")

    # Listing leaves them in place, even when asked twice.
    for _ in range(2):
        letters = await list_dead_letters(backbone.amqp_url, SERVICE)
        assert sorted(str(letter.message_id) for letter in letters) == sorted([first.id, second.id, "junk"])
    assert await dead_letter_count(backbone) == 3

    broken["on"] = False  # the bug is fixed: replay one, then the rest
    assert await replay_dead_letters(backbone.amqp_url, SERVICE, message_id=first.id) == 1
    await wait_until(lambda: _effects_at_least(backbone, 1), within=5, what="the replayed event")
    assert await dead_letter_count(backbone) == 2

    # The command line, as an operator runs it; the malformed message dies again, harmlessly.
    env = {**os.environ, "AMQP_URL": backbone.amqp_url}
    listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "portal_shared.dlq", "list", SERVICE],
                                     env=env, capture_output=True, text=True, timeout=30, check=True)
    assert second.id in listed.stdout and "junk" in listed.stdout and first.id not in listed.stdout
    replayed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "portal_shared.dlq", "replay", SERVICE],
                                       env=env, capture_output=True, text=True, timeout=30, check=True)
    assert "replayed 2 message(s)" in replayed.stdout
    await wait_until(lambda: _effects_at_least(backbone, 2), within=5, what="the second replayed event")
    await wait_until(lambda: _dlq_at_least(backbone, 1), within=5, what="junk back in the DLQ")

    # Replaying an event that already had its effect has no second one.
    await _publish_event(backbone, first)
    await asyncio.sleep(0.5)
    assert await backbone.effects() == (2, 2)
    assert [letter.message_id for letter in await list_dead_letters(backbone.amqp_url, SERVICE)] == ["junk"]


async def test_database_outage_does_not_spend_deliveries(backbone: Backbone, stack_env: dict[str, str]) -> None:
    """While the handler's database refuses connections the message waits in place, then succeeds once."""
    await backbone.start_consumer(delivery_limit=1)  # any nack would dead-letter it
    database = backbone.dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(stack_env["ADMIN_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
        envelope = Envelope.wrap(TotpEnabled(user_id="u1"), source="test")
        await _publish_event(backbone, envelope)
        await asyncio.sleep(1.5)  # several in-place retries against a database that is not there
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        try:
            await wait_until(lambda: _effects_at_least(backbone, 1), within=30, what="the held message")
        except AssertionError as exc:
            letters = await list_dead_letters(backbone.amqp_url, SERVICE)
            raise AssertionError(f"{exc}; dead letters: {letters}") from None
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert await backbone.effects() == (1, 1)
    assert await dead_letter_count(backbone) == 0


async def _inbox_row(backbone: Backbone, message_id: str, days_ago: int) -> None:
    await backbone.pool.execute("INSERT INTO inbox (consumer, message_id, type, processed_at) "
                                "VALUES ('retention', $1, 'mfa.totp_enabled', now() - make_interval(days => $2))",
                                message_id, days_ago)


async def _inbox_ids(backbone: Backbone) -> set[str]:
    rows = await backbone.pool.fetch("SELECT message_id FROM inbox WHERE consumer = 'retention'")
    return {r["message_id"] for r in rows}


async def test_inbox_rows_are_pruned_after_the_retention_in_chunks(backbone: Backbone) -> None:
    for i in range(3):
        await _inbox_row(backbone, f"old-{i}", 31)
    await _inbox_row(backbone, "recent", 29)
    assert await inbox.prune(backbone.pool, chunk=2) == 3  # two chunks: 2, then 1
    assert await _inbox_ids(backbone) == {"recent"}


async def test_the_inbox_prune_loop_runs_at_once_and_survives_a_failed_run(backbone: Backbone) -> None:
    await _inbox_row(backbone, "old", 31)
    await _inbox_row(backbone, "recent", 1)
    loop = asyncio.create_task(inbox.prune_forever(backbone.pool, trace.get_tracer("test"), every_seconds=0.05))
    try:
        for _ in range(200):  # the first run starts at once
            if await _inbox_ids(backbone) == {"recent"}:
                break
            await asyncio.sleep(0.02)
        assert await _inbox_ids(backbone) == {"recent"}
        # A run that fails (the table briefly unreadable for the service) is logged and retried, not fatal.
        await backbone.pool.execute("ALTER TABLE inbox RENAME TO inbox_away")
        await asyncio.sleep(0.2)
        assert not loop.done()
        await backbone.pool.execute("ALTER TABLE inbox_away RENAME TO inbox")
        await _inbox_row(backbone, "old-again", 40)
        for _ in range(200):
            if await _inbox_ids(backbone) == {"recent"}:
                break
            await asyncio.sleep(0.02)
        assert await _inbox_ids(backbone) == {"recent"}
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
