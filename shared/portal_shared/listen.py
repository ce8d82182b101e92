"""One LISTEN loop for every worker pool woken by NOTIFY (the outbox relay, the notifier's dispatcher).

A dedicated connection LISTENs on a channel and rings a doorbell per notification. Every step has a
timeout: a half-open TCP connection (a peer gone without a FIN) would otherwise hang the loop forever and
leave the workers on their fallback poll, so the loop probes the connection and reconnects when a probe
does not answer in time.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from portal_shared import db
from portal_shared.doorbell import Doorbell

log = structlog.get_logger("portal.listen")

CONNECT_TIMEOUT = 10.0
PROBE_INTERVAL = 5.0
PROBE_TIMEOUT = 5.0
CLOSE_TIMEOUT = 2.0
RECONNECT_DELAY = 2.0


async def listen_forever(dsn: str, channel: str, doorbell: Doorbell, *, name: str,
                         probe_interval: float = PROBE_INTERVAL, probe_timeout: float = PROBE_TIMEOUT,
                         reconnect_delay: float = RECONNECT_DELAY) -> None:
    """LISTEN on `channel` until cancelled, ringing `doorbell` once per NOTIFY.

    After each (re)connect every worker is woken: rows may have committed while nobody listened.
    `name` goes into the log line written when the connection is lost (`<name>_listen_lost`).
    """
    while True:
        try:
            conn = await db.connect(dsn, timeout=CONNECT_TIMEOUT)  # multi-host: the primary only
            try:
                await conn.add_listener(channel, lambda *_: doorbell.ring())
                doorbell.ring_all()
                while not conn.is_closed():
                    await asyncio.sleep(probe_interval)
                    await conn.execute("SELECT 1", timeout=probe_timeout)  # notices a dead connection
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(f"{name}_listen_lost", error=type(exc).__name__)
            await asyncio.sleep(reconnect_delay)
