"""Operator command for dead letters: `python -m portal_shared.dlq list|replay SERVICE`.

`list` shows what is in the service's dead-letter queue (left in place); `replay` moves the messages
back to the service's queue, where the idempotent consumer makes a second effect impossible.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import aio_pika

from portal_shared import broker


async def list_dead_letters(amqp_url: str, service: str, limit: int = 100) -> list[dict[str, object]]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(broker.dead_letter_queue_name(service), ensure=True)
        seen = []
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            death = (message.headers.get("x-death") or [{}])[0]
            seen.append({"message_id": message.message_id, "type": message.type,
                         "reason": death.get("reason") if isinstance(death, dict) else None,
                         "body": message.body.decode(errors="replace")[:500]})
        # Closing the channel without acks returns every message to the queue.
        await channel.close()
    return seen


async def replay_dead_letters(amqp_url: str, service: str, limit: int = 10_000) -> int:
    connection = await aio_pika.connect(amqp_url)
    replayed = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.get_queue(broker.dead_letter_queue_name(service), ensure=True)
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            copy = aio_pika.Message(message.body, message_id=message.message_id, type=message.type,
                                    content_type=message.content_type,
                                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(copy, routing_key=broker.queue_name(service))
            await message.ack()
            replayed += 1
    return replayed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m portal_shared.dlq", description=__doc__)
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("service", choices=["profile", "mfa", "notifier"])
    args = parser.parse_args()
    amqp_url = os.environ["AMQP_URL"]
    if args.action == "list":
        for item in asyncio.run(list_dead_letters(amqp_url, args.service)):
            print(item)
    else:
        print(f"replayed {asyncio.run(replay_dead_letters(amqp_url, args.service))} message(s)")


if __name__ == "__main__":
    main()
