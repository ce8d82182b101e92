"""Operator command for dead letters: `python -m portal_shared.dlq list|replay SERVICE [--message-id ID]`.

`list` shows what is in the service's dead-letter queue (left in place); `replay` moves messages back to
the service's queue, where the idempotent consumer makes a second effect impossible. Replay is
at-least-once: a message is acked in the dead-letter queue only after the broker confirmed its copy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from portal_shared import broker

_SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str | None
    type: str | None
    reason: str | None  # rejected (malformed, permanent, delivery limit) or delivery_limit (by the queue)
    queue: str | None  # where it died
    count: int  # how often it was dead-lettered
    body: str


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    deaths: Any = (message.headers or {}).get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], dict) else {}
    return DeadLetter(message_id=message.message_id, type=message.type,
                      reason=str(death["reason"]) if "reason" in death else None,
                      queue=str(death["queue"]) if "queue" in death else None,
                      count=int(death.get("count", 1) or 1),
                      body=message.body.decode(errors="replace")[:500])


async def list_dead_letters(amqp_url: str, service: str, limit: int = 100) -> list[DeadLetter]:
    """Up to `limit` dead letters of `service`, oldest first; the queue is left as it was."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
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
    connection = await aio_pika.connect(amqp_url)
    replayed = 0
    async with connection:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_shared.dlq", description=__doc__)
    parser.add_argument("action", choices=["list", "replay"])
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
    else:
        count = asyncio.run(replay_dead_letters(amqp_url, args.service, message_id=args.message_id,
                                                limit=args.limit or 10_000))
        print(f"replayed {count} message(s) to {broker.queue_name(args.service)}")


if __name__ == "__main__":
    main()
