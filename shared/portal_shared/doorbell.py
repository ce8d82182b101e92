"""A doorbell for a pool of workers that sleep until there is work (a NOTIFY) or a poll comes due."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Doorbell:
    """Wakes one idle worker per ring (say, a committed row), not all of them: with rows trickling in, every
    extra worker woken would only run an empty claim query. A ring while nobody waits is kept, so the next
    worker to go idle claims again at once and nothing waits for the poll."""

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._pending = False

    def ring(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._pending = True

    def ring_all(self) -> None:
        while self._waiters:
            self.ring()
        self._pending = True

    async def wait(self, seconds: float) -> None:
        """Until rung or `seconds` passed (retries and expired leases are found by polling)."""
        if self._pending:
            self._pending = False
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
