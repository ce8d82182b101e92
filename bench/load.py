"""A small closed-loop load generator: N workers issue requests back to back for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.report import percentile


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)


async def closed_loop(call: Callable[[], Awaitable[bool]], *, concurrency: int, seconds: float,
                      max_requests: int = 1_000_000) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) < max_requests:
            t0 = time.perf_counter()
            ok = await call()
            latencies.append((time.perf_counter() - t0) * 1000)
            if not ok:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(latencies), time.perf_counter() - started, latencies, errors)
