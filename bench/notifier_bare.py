"""The baseline of the notifier benchmark, run as its own process (as the notifier is): the barest
consume → send loop. Each message of a quorum queue is sent as a prebuilt email (its Message-ID set from
the AMQP message id) over one reused aiosmtplib connection, then acked. No database, no templates.

    python -m bench.notifier_bare AMQP_URL QUEUE SMTP_PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aio_pika
import aiosmtplib
from portal_shared.runtime import run_on_service_loop

PREFETCH = 64
# About the size of a notifier email (headers, a plain-text part and an HTML part).
_BODY = ("Hello Ada,\r\n\r\nYour Client Portal password was changed.\r\n" * 20).encode()
_TEMPLATE = (b"From: Client Portal <no-reply@portal.test>\r\nTo: %s\r\nSubject: Your password was changed\r\n"
             b"Date: Tue, 04 Mar 2025 14:05:09 +0000\r\nMessage-ID: <%s@portal>\r\nX-Portal-Event: bench\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n" + _BODY * 2)


async def main(amqp_url: str, queue_name: str, smtp_port: int) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
    await smtp.connect()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def consume() -> None:
        async with queue.iterator() as messages:
            print("consuming", flush=True)
            async for message in messages:
                recipient = f"user-{message.message_id[:8]}@client.example"
                await smtp.sendmail("no-reply@portal.test", [recipient],
                                    _TEMPLATE % (recipient.encode(), message.message_id.encode()))
                await message.ack()

    task = asyncio.create_task(consume())
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await smtp.quit()
    await connection.close()


if __name__ == "__main__":
    run_on_service_loop(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
