"""The outbox and its relay against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import aio_pika
import pytest
from portal_shared.events import decode
from portal_shared.events.contracts import (
    SECRET_DATA_FIELDS,
    MfaResetByAdmin,
    PasswordResetRequested,
    TotpDisabled,
    TotpEnabled,
    UserInvited,
)
from portal_shared.outbox import enqueue

from tests.integration.backbone.backbone_support import Backbone, metric, wait_until


async def _unsent(backbone: Backbone) -> int:
    return await backbone.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def test_outbox_row_rolls_back_with_its_transaction(backbone: Backbone) -> None:
    _, queue = await backbone.test_queue("#")
    backbone.start_relay(poll_seconds=0.1)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with backbone.pool.acquire() as conn, conn.transaction():
            await enqueue(conn, TotpEnabled(user_id="rolled-back"), source="test")
            raise Boom
    committed = await backbone.write(TotpEnabled(user_id="committed"))

    messages = await backbone.drain(queue, 2, within=3)  # waits for a second one that must not come
    assert [m.message_id for m in messages] == [committed.id]
    assert await backbone.pool.fetchval("SELECT count(*) FROM outbox") == 1

    async with backbone.pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await enqueue(conn, TotpEnabled(user_id="no-transaction"), source="test")


async def test_relay_publishes_committed_rows_with_confirms_and_marks_them_sent(backbone: Backbone) -> None:
    _, queue = await backbone.test_queue("mfa.*")
    published_before = metric("portal_outbox_published_total", type="mfa.totp_enabled")
    # A long poll: only LISTEN/NOTIFY can make the relay this quick.
    backbone.start_relay(poll_seconds=60)
    await asyncio.sleep(0.3)  # let the listener connect
    started = time.monotonic()
    written = await backbone.write_many(20, per_transaction=5)
    messages = await backbone.drain(queue, 20, within=5)
    assert time.monotonic() - started < 3, "the relay was not woken by NOTIFY"

    by_id = {e.id: e for e in written}
    assert sorted(m.message_id for m in messages) == sorted(by_id)
    for message in messages:
        envelope = decode(message.body)
        assert envelope == by_id[message.message_id]  # message_id = event id, body = the envelope
        assert message.type == "mfa.totp_enabled" == message.routing_key
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    await wait_until(lambda: _zero(_unsent(backbone)), within=3, what="rows marked sent")
    assert metric("portal_outbox_published_total", type="mfa.totp_enabled") - published_before == 20
    row = await backbone.pool.fetchrow("SELECT attempts, last_error, published_at FROM outbox LIMIT 1")
    assert row["attempts"] == 0 and row["last_error"] is None and row["published_at"] is not None


async def _zero(count: object) -> bool:
    return await count == 0  # type: ignore[misc]


async def test_unroutable_event_stays_unsent_and_is_reported(backbone: Backbone) -> None:
    _, queue = await backbone.test_queue("mfa.totp_enabled")  # nobody binds mfa.reset_by_admin
    relay = backbone.relay(refused_backoff=timedelta(seconds=30))
    reported_before = metric("portal_outbox_publish_failures_total", reason="unroutable")
    lost = await backbone.write(MfaResetByAdmin(user_id="u1", admin_id="a1"))
    routable = await backbone.write(TotpEnabled(user_id="u1"))

    assert await relay.publish_batch() == 2
    assert await relay.publish_batch() == 0  # backing off, not retried in a hot loop
    rows = {str(r["id"]): r for r in await backbone.pool.fetch(
        "SELECT id, published_at, attempts, last_error, next_attempt_at > now() AS later FROM outbox")}
    assert rows[routable.id]["published_at"] is not None  # the unroutable row blocks nothing
    stuck = rows[lost.id]
    assert stuck["published_at"] is None and stuck["attempts"] == 1 and stuck["later"]
    assert "unroutable" in stuck["last_error"]
    assert metric("portal_outbox_publish_failures_total", reason="unroutable") == reported_before + 1
    assert [m.message_id for m in await backbone.drain(queue, 2, within=1)] == [routable.id]

    await relay.update_stats()
    assert metric("portal_outbox_unsent") == 1
    assert metric("portal_outbox_lag_seconds") >= 0

    # Once a queue is bound (and the backoff is over) it goes out.
    _, late = await backbone.test_queue("mfa.reset_by_admin")
    await backbone.pool.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", lost.id)
    assert await relay.publish_batch() == 1
    assert [m.message_id for m in await backbone.drain(late, 1, within=3)] == [lost.id]
    assert await _unsent(backbone) == 0


async def test_two_relays_on_one_outbox_publish_no_row_twice(backbone: Backbone) -> None:
    _, queue = await backbone.test_queue("#")
    other = await backbone.new_connection()
    backbone.start_relay(batch_size=50, poll_seconds=0.05)
    backbone.start_relay(other, batch_size=50, poll_seconds=0.05)
    written = await backbone.write_many(1200, per_transaction=20)
    messages = await backbone.drain(queue, 1200, within=30)
    await asyncio.sleep(0.5)
    messages += await backbone.drain(queue, 1, within=0.5)  # anything published twice arrives by now
    ids = [m.message_id for m in messages]
    assert len(ids) == 1200 and set(ids) == {e.id for e in written}


async def test_relay_retries_while_broker_is_unreachable(backbone: Backbone) -> None:
    """A broker that is not there: the rows wait, the relay keeps trying, nothing is marked sent."""
    dead = await backbone.new_connection()
    await dead.close()  # a closed connection: every channel open fails
    relay = backbone.relay(dead)
    await backbone.write(TotpDisabled(user_id="u1"))
    failures_before = metric("portal_outbox_publish_failures_total", reason="broker_unavailable")
    with pytest.raises(ConnectionError):
        await relay.publish_batch()
    assert metric("portal_outbox_publish_failures_total", reason="broker_unavailable") > failures_before
    assert await _unsent(backbone) == 1


async def test_published_rows_are_pruned_after_retention(backbone: Backbone) -> None:
    relay = backbone.relay(retention=timedelta(days=7))
    old, fresh, unsent = [await backbone.write(TotpEnabled(user_id=u)) for u in ("old", "fresh", "unsent")]
    await backbone.pool.execute("UPDATE outbox SET published_at = now() - interval '8 days' WHERE id = $1", old.id)
    await backbone.pool.execute("UPDATE outbox SET published_at = now() - interval '6 days' WHERE id = $1",
                                fresh.id)
    assert await relay.prune(chunk=1) == 1
    left = {str(r["id"]) for r in await backbone.pool.fetch("SELECT id FROM outbox")}
    assert left == {fresh.id, unsent.id}


async def test_outbox_body_is_the_encoded_envelope(backbone: Backbone) -> None:
    """The pool's jsonb codec must not double-encode the body into a JSON string."""
    envelope = await backbone.write(TotpEnabled(user_id="u1"))
    body = await backbone.pool.fetchval("SELECT body::text FROM outbox WHERE id = $1", envelope.id)
    assert json.loads(body)["id"] == envelope.id
    assert decode(body) == envelope


async def test_published_rows_keep_no_link(backbone: Backbone) -> None:
    """Reset and invitation links leave the outbox row in the statement that marks it sent; the published
    message still had them, and the rest of the row (and of rows without links) is unchanged."""
    _, queue = await backbone.test_queue("profile.*", "mfa.*")
    reset_url = "http://localhost:8080/portal/reset-password?token=reset-secret-1"
    invite_url = "http://localhost:8080/portal/accept-invite?token=invite-secret-2"
    reset = await backbone.write(PasswordResetRequested(user_id="u1", email="a@client.example", reset_url=reset_url,
                                                        expires_at="2030-01-01T00:00:00Z"))
    invite = await backbone.write(UserInvited(user_id="u2", email="b@client.example", name="B",
                                              set_password_url=invite_url, expires_at="2030-01-01T00:00:00Z"))
    plain = await backbone.write(TotpEnabled(user_id="u3"))
    stored_before = await backbone.pool.fetchval("SELECT body::text FROM outbox WHERE id = $1", plain.id)

    relay = backbone.relay()
    assert await relay.publish_batch() == 3
    published = {m.message_id: json.loads(m.body) for m in await backbone.drain(queue, 3, within=5)}
    assert published[reset.id]["data"]["reset_url"] == reset_url
    assert published[invite.id]["data"]["set_password_url"] == invite_url

    rows = {str(r["id"]): r for r in await backbone.pool.fetch(
        "SELECT id, body::text AS body, published_at FROM outbox")}
    assert all(row["published_at"] is not None for row in rows.values())
    for envelope in (reset, invite):
        text = rows[envelope.id]["body"]
        assert "token=" not in text and "secret" not in text
        stored = json.loads(text)
        assert not set(SECRET_DATA_FIELDS) & set(stored["data"])
        expected = json.loads(json.dumps(published[envelope.id]))  # a deep copy
        for name in SECRET_DATA_FIELDS:
            expected["data"].pop(name, None)
        assert stored == expected  # only the links are gone
    assert rows[plain.id]["body"] == stored_before
