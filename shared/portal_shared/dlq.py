"""Operator command for dead letters: `python -m portal_shared.dlq list|replay|scrub SERVICE [--message-id ID]`.

`list` shows what is in the service's dead-letter queue (left in place); `replay` moves messages back to
the service's queue, where the idempotent consumer makes a second effect impossible. Replay is
at-least-once: a message is acked in the dead-letter queue only after the broker confirmed its copy.

Dead letters hold no usable token. The consumer dead-letters a message it gives up on as a scrubbed
copy (`publish_dead_letter`: the event's SECRET_DATA_FIELDS removed, any `token=` value blanked), so
reset and invitation links never sit in `<service>.dead-letter`. A message the broker dead-letters itself
(the queue's x-delivery-limit after a crash loop, or the consumer's fallback when its copy could not be
published) arrives raw; `scrub_dead_letters` rewrites those in place. It runs at every consumer start (a
crash loop restarts the consumer), before `list` and before `replay`, and as `scrub`.
A replayed reset or invitation event has lost its link, so it dead-letters again as malformed instead of
emailing a broken link: the user asks for a new reset, or an admin resends the invitation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from portal_shared import broker
from portal_shared.events.contracts import SECRET_DATA_FIELDS

_SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Where a dead letter came from, on the copies we write (x-death is only ever the broker's own). `x-`
# headers are dropped by `replay`, so a replayed message starts afresh, as one the broker dead-lettered.
REASON_HEADER = "x-portal-dead-letter-reason"  # "rejected" or "delivery_limit", as x-death's reason
QUEUE_HEADER = "x-portal-dead-letter-queue"
COUNT_HEADER = "x-portal-dead-letter-count"
CAUSE_HEADER = "x-portal-dead-letter-cause"  # the consumer's: malformed, permanent or delivery_limit
DETAIL_HEADER = "x-portal-dead-letter-detail"
SCRUBBED_HEADER = "x-portal-scrubbed"
# A token in any link-like text: a body that is not an event we can parse may still carry one.
_TOKEN_VALUE = re.compile(rb"(token=)[^&\s\"'<>\\]+")
REDACTED = b"[removed]"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str | None
    type: str | None
    reason: str | None  # rejected (malformed, permanent, delivery limit) or delivery_limit (by the queue)
    queue: str | None  # where it died
    count: int  # how often it was dead-lettered
    body: str
    cause: str | None = None  # the consumer's reason: malformed, permanent or delivery_limit


def _death(message: AbstractIncomingMessage) -> tuple[str | None, str | None, int]:
    """(reason, queue, count): the broker's x-death when it dead-lettered the message, else our headers."""
    headers = message.headers or {}
    deaths: Any = headers.get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], dict) else {}
    if death:
        return (str(death["reason"]) if "reason" in death else None,
                str(death["queue"]) if "queue" in death else None, int(death.get("count", 1) or 1))
    reason, queue = headers.get(REASON_HEADER), headers.get(QUEUE_HEADER)
    return (str(reason) if reason is not None else None, str(queue) if queue is not None else None,
            int(headers.get(COUNT_HEADER, 1) or 1))  # type: ignore[call-overload]


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    reason, queue, count = _death(message)
    cause = (message.headers or {}).get(CAUSE_HEADER)
    return DeadLetter(message_id=message.message_id, type=message.type, reason=reason, queue=queue, count=count,
                      body=message.body.decode(errors="replace")[:500],
                      cause=str(cause) if cause is not None else None)


def scrub_text(raw: bytes) -> bytes:
    """Blank every `token=` value (in a link, or anywhere else) of `raw`."""
    return _TOKEN_VALUE.sub(rb"\1" + REDACTED, raw)


def scrub_body(body: bytes) -> bytes:
    """The message body without usable tokens: an event's SECRET_DATA_FIELDS removed, then any `token=`
    value blanked (a malformed or unknown message may carry a link anywhere)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return scrub_text(body)
    if isinstance(parsed, dict) and isinstance(parsed.get("data"), dict):
        data = parsed["data"]
        if any(name in data for name in SECRET_DATA_FIELDS):
            parsed["data"] = {k: v for k, v in data.items() if k not in SECRET_DATA_FIELDS}
            body = json.dumps(parsed, separators=(",", ":")).encode()
    return scrub_text(body)


def scrubbed_copy(message: AbstractIncomingMessage, *, reason: str | None, queue: str | None, count: int,
                  cause: str | None = None, detail: str | None = None) -> aio_pika.Message:
    """A persistent copy of `message` without usable tokens, saying where and why it died."""
    headers: dict[str, Any] = {k: v for k, v in (message.headers or {}).items() if k != "x-death"}
    for name, value in ((REASON_HEADER, reason), (QUEUE_HEADER, queue), (CAUSE_HEADER, cause),
                        (DETAIL_HEADER, scrub_text(detail.encode()).decode()[:300] if detail else None)):
        if value is not None:
            headers[name] = value
    headers[COUNT_HEADER] = count
    headers[SCRUBBED_HEADER] = True
    return aio_pika.Message(scrub_body(message.body), message_id=message.message_id, type=message.type,
                            content_type=message.content_type, correlation_id=message.correlation_id,
                            headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def publish_dead_letter(channel: AbstractChannel, service: str, message: AbstractIncomingMessage, *,
                              cause: str, detail: str | None = None) -> None:
    """Dead-letter `message` of `service`'s queue as a scrubbed copy, through the dead-letter exchange.

    `channel` must be in confirm mode: this returns once the broker has the copy (mandatory, so a missing
    dead-letter queue raises instead of dropping it). The caller acks the original afterwards.
    """
    previous = (message.headers or {}).get(COUNT_HEADER)
    count = int(previous) + 1 if isinstance(previous, int) else 1
    copy = scrubbed_copy(message, reason="rejected", queue=broker.queue_name(service), count=count,
                         cause=cause, detail=detail)
    exchange = await channel.declare_exchange(broker.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT,
                                              durable=True)
    await exchange.publish(copy, routing_key=service, mandatory=True, timeout=10)


async def scrub_dead_letters(connection: AbstractConnection, service: str, limit: int = 10_000) -> int:
    """Rewrite the raw dead letters of `service` (dead-lettered by the broker itself) as scrubbed copies;
    return how many. Each raw message is acked only after the broker confirmed its copy (nothing lost; a
    failure in between leaves both, and the next run scrubs it again). Scrubbed ones stay as they are."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    rewritten = 0
    try:
        queue = await broker.declare_dead_letters(channel, service)
        # Until the queue has nothing more to give (not its message count at the start: messages another
        # channel holds, e.g. a `list` running, come back later). Scrubbed messages and our own copies
        # stay unacked on this channel, so each message is looked at once and the loop ends.
        for _ in range(2 * limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            if (message.headers or {}).get(SCRUBBED_HEADER):
                continue  # stays unacked: back in the queue when the channel closes
            reason, died_in, count = _death(message)
            copy = scrubbed_copy(message, reason=reason, queue=died_in, count=count)
            await channel.default_exchange.publish(copy, routing_key=queue.name, mandatory=True, timeout=10)
            await message.ack()
            rewritten += 1
    finally:
        await channel.close()
    return rewritten


async def list_dead_letters(amqp_url: str, service: str, limit: int = 100) -> list[DeadLetter]:
    """Up to `limit` dead letters of `service`, oldest first; the queue is left as it was."""
    connection = await broker.connect_once(amqp_url)
    async with connection:
        await scrub_dead_letters(connection, service)  # what the broker dead-lettered raw is rewritten first
        channel = await connection.channel()
        queue = await broker.declare_dead_letters(channel, service)
        seen = []
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            seen.append(_describe(message))
        # Closing the channel without acks returns every message to the queue.
        await channel.close()
    return seen


async def replay_dead_letters(amqp_url: str, service: str, *, message_id: str | None = None,
                              limit: int = 10_000) -> int:
    """Move dead letters (all, or those with `message_id`) back to the service queue; return how many.

    Only the messages present when it starts are looked at, so a message that dies again at once is
    not replayed in a loop.
    """
    connection = await broker.connect_once(amqp_url)
    replayed = 0
    async with connection:
        await scrub_dead_letters(connection, service)  # never replay (or leave) a raw link
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await broker.declare_dead_letters(channel, service)
        target = await channel.get_queue(broker.queue_name(service), ensure=True)  # fails if missing
        waiting = min(queue.declaration_result.message_count or 0, limit)
        for _ in range(waiting):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            if message_id is not None and message.message_id != message_id:
                continue  # stays unacked: back in the queue when the channel closes
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
            headers["x-replayed"] = True
            copy = aio_pika.Message(message.body, message_id=message.message_id, type=message.type,
                                    content_type=message.content_type, correlation_id=message.correlation_id,
                                    headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            # Straight to the service's queue (default exchange), mandatory: confirmed or raised.
            await channel.default_exchange.publish(copy, routing_key=target.name, mandatory=True)
            await message.ack()
            replayed += 1
        await channel.close()
    return replayed


async def _scrub(amqp_url: str, service: str, *, limit: int) -> int:
    connection = await broker.connect_once(amqp_url)
    async with connection:
        return await scrub_dead_letters(connection, service, limit=limit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_shared.dlq", description=__doc__)
    parser.add_argument("action", choices=["list", "replay", "scrub"])
    parser.add_argument("service", help="profile, mfa or notifier")
    parser.add_argument("--message-id", help="replay only this message (the event id)")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    if not _SERVICE.match(args.service):
        parser.error("service must be a service name such as notifier")
    amqp_url = os.environ["AMQP_URL"]
    if args.action == "list":
        letters = asyncio.run(list_dead_letters(amqp_url, args.service, limit=args.limit or 100))
        for letter in letters:
            print(asdict(letter))
        print(f"{len(letters)} dead letter(s) in {broker.dead_letter_queue_name(args.service)}")
    elif args.action == "scrub":
        count = asyncio.run(_scrub(amqp_url, args.service, limit=args.limit or 10_000))
        print(f"scrubbed {count} message(s) in {broker.dead_letter_queue_name(args.service)}")
    else:
        count = asyncio.run(replay_dead_letters(amqp_url, args.service, message_id=args.message_id,
                                                limit=args.limit or 10_000))
        print(f"replayed {count} message(s) to {broker.queue_name(args.service)}")


if __name__ == "__main__":
    main()
