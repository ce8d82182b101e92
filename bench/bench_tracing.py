"""The cost of tracing (issue #18) on R1, GET /api/profile through nginx with a signed-in session.

Three throwaway stacks at once, the same in all but the OTEL_* settings of their services:
- off: no OTEL_EXPORTER_OTLP_ENDPOINT (the no-op tracer);
- 100%: OTLP/HTTP to a receiver in this process (it answers 200 and counts the bytes), sampler
  `traceidratio` 1.0: every request's spans (server, SQL) are recorded, batched and exported;
- 1%: the same with `traceidratio` 0.01.
Each figure is the median over rounds of (rate with tracing ÷ rate with it off in the same round; goals:
≥ 0.90 at 100%, ≥ 0.98 at 1%). The modes' rounds are interleaved, so the machine's drift hits them alike.

    PYTHONPATH=. uv run python -m bench.bench_tracing
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from portal_devstack.process import free_port
from portal_devstack.stack import LocalStack

from bench.bench_http import getter, sign_in
from bench.load import LoadResult, closed_loop
from bench.report import Figure, median, spread, write
from tests.support.stack import DEMO_PASSWORD, throwaway_stack

ROUNDS = 5
CONCURRENCY = 8
SECONDS = 3.0
MODES = {"off": None, "100%": "1.0", "1%": "0.01"}
_OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")


class Receiver:
    """An OTLP/HTTP trace endpoint that accepts everything (the collector's cost is not ours to measure)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.bytes += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def start(ratio: str | None, receiver: Receiver) -> LocalStack:
    """A stack whose service processes got this mode's OTEL_* settings (they inherit the environment)."""
    for key in _OTEL:
        os.environ.pop(key, None)
    if ratio is not None:
        os.environ.update({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                           "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio})
    stack = throwaway_stack()
    try:
        await asyncio.to_thread(stack.start)
    finally:
        for key in _OTEL:
            os.environ.pop(key, None)
    return stack


async def run() -> list[Figure]:
    receiver = Receiver()
    await receiver.start()
    stacks: dict[str, LocalStack] = {}
    runs: dict[str, list[LoadResult]] = {mode: [] for mode in MODES}
    try:
        for mode, ratio in MODES.items():
            stacks[mode] = await start(ratio, receiver)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            calls = {}
            for mode, stack in stacks.items():
                gateway = f"http://127.0.0.1:{stack.ports.gateway}"
                raw = await sign_in(http, gateway, "demo@client.example", DEMO_PASSWORD)
                calls[mode] = getter(http, f"{gateway}/api/profile", raw)
                await closed_loop(calls[mode], concurrency=CONCURRENCY, seconds=2)  # warm-up
            exported_before = receiver.bytes
            for _ in range(ROUNDS):  # interleaved, so the machine's drift hits every mode alike
                for mode, call in calls.items():
                    runs[mode].append(await closed_loop(call, concurrency=CONCURRENCY, seconds=SECONDS))
            exported = receiver.bytes - exported_before
    finally:
        for stack in stacks.values():
            await asyncio.to_thread(stack.stop)
        await receiver.stop()
    off = [r.rate for r in runs["off"]]
    figures = []
    for mode, goal in (("100%", ">= 0.90"), ("1%", ">= 0.98")):
        rates = [r.rate for r in runs[mode]]
        ratios = [rate / base for rate, base in zip(rates, off, strict=True)]  # each round against its own off
        errors = sum(r.errors for r in runs[mode])
        figures.append(Figure(f"R1 GET /api/profile with tracing at {mode} ÷ tracing off", median(ratios), goal,
                              "×", f"{median(rates):,.0f}/s vs {median(off):,.0f}/s off at {CONCURRENCY} clients; p99 "
                              f"{median([r.p99 for r in runs[mode]]):.1f} ms vs "
                              f"{median([r.p99 for r in runs['off']]):.1f} ms; ratio {spread(ratios)}; "
                              f"errors {errors}"))
    print(f"OTLP exported during the measured rounds: {exported:,} bytes ({receiver.requests} batches in all)")
    return figures


async def main() -> None:
    started = time.monotonic()
    figures = await run()
    print()
    for figure in figures:
        print(figure.line())
    print(f"results: {write('bench-tracing', figures)}.{{json,md}} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
