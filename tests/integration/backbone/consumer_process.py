"""A consumer in its own process, for the SIGKILL test: `python consumer_process.py` with DATABASE_URL,
AMQP_URL and HANDLER_DELAY (seconds inside each handler's transaction) in the environment."""

from __future__ import annotations

import asyncio
import os
import signal

import asyncpg
from portal_shared import broker, db
from portal_shared.consumer import EventConsumer
from portal_shared.events import Envelope
from portal_shared.events.contracts import TotpEnabled

SERVICE = "notifier"


async def main() -> None:
    delay = float(os.environ.get("HANDLER_DELAY", "0"))

    async def record_effect(conn: asyncpg.Connection, envelope: Envelope) -> None:
        await conn.execute("INSERT INTO effects (message_id, type, user_id) VALUES ($1, $2, $3)",
                           envelope.id, envelope.type, envelope.event.user_id)
        await asyncio.sleep(delay)  # widens the window between the effect and its ack

    pool = await db.create_pool(os.environ["DATABASE_URL"], schema=SERVICE, min_size=1, max_size=8)
    connection = await broker.connect(os.environ["AMQP_URL"], name="consumer-process", reconnect_interval=0.5)
    consumer = EventConsumer(pool, connection, service=SERVICE, handlers={TotpEnabled.type: record_effect},
                             prefetch=16, retry_base_seconds=0.05)
    await consumer.start()
    print("consuming", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await consumer.stop(grace_seconds=5)
    await connection.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
