"""The cost of tracing (issue #18) on R1 (GET /api/profile through nginx with a signed-in session) and R3
(password sign-ins/s, POST /api/auth/login through nginx, no 2FA).

Throwaway stacks, the same in all but the OTEL_* settings of their services:
- off: no OTEL_EXPORTER_OTLP_ENDPOINT (the no-op tracer);
- 100%: OTLP/HTTP to a sink in a process of its own (bench/otlp_sink.py: it answers 200 and counts the
  bytes), sampler `traceidratio` 1.0: every request's spans (server, client, SQL) are recorded, batched and
  exported;
- 1%: the same with `traceidratio` 0.01.
The load is bench_http's own (its `getter` for R1, its `SignInLoad` over many users and source addresses
for R3), so these ratios price tracing on the very requests that bench measures.

How the figure is made trustworthy on a noisy 2-core VM: one stack is alive at a time, and each round
starts a fresh stack per mode, in an order that rotates from round to round (off, 100%, 1%; then 100%,
1%, off; …). An earlier version kept the three stacks up side by side and alternated short slots between
them; swapping the order in which they were started showed the first-started stack faster by 20–30% in
whatever mode it ran, a bias of the instance (and the other two idle stacks' own work), not of tracing.
Fresh stacks per round spread that over the modes, and the rotation spreads slow drift. Each round's
figure is a mode's rate ÷ the rate of the round's off stack; the result is the median over the rounds
(goals: ≥ 0.90 at 100%, ≥ 0.98 at 1%). The load average before and after is in the note.

    PYTHONPATH=. uv run python -m bench.bench_tracing
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from portal_devstack.process import StartError
from portal_devstack.stack import LocalStack

from bench.bench_http import REPO, SIGNIN_CONCURRENCY, SIGNIN_USERS, SignInLoad, create_users, getter, sign_in
from bench.load import LoadResult, closed_loop
from bench.report import Figure, median, spread, write
from tests.support.stack import DEMO_PASSWORD, throwaway_stack

ROUNDS = 5  # fresh stacks per mode and round
CONCURRENCY = 8  # R1 clients; R3 uses bench_http's SIGNIN_CONCURRENCY
R1_SECONDS = 4.0
R3_SECONDS = 6.0  # ~50 sign-ins/s on 2 cores: a few hundred sign-ins per stack
START_ATTEMPTS = 3
SETTLE_SECONDS = 3.0  # after a stack's start, before its warm-up: its services' own start-up work ends
MODES = {"off": None, "100%": "1.0", "1%": "0.01"}
GOALS = {"100%": ">= 0.90", "1%": ">= 0.98"}
_OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")


class Sink:
    """bench/otlp_sink.py in its own process: where the traced stacks export."""

    def __init__(self) -> None:
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.otlp_sink", stdout=asyncio.subprocess.PIPE, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        assert self._proc.stdout is not None
        line = (await asyncio.wait_for(self._proc.stdout.readline(), timeout=30)).decode().split()
        if line[:1] != ["ready"]:
            raise RuntimeError(f"the OTLP sink did not start: {line}")
        self.port = int(line[1])

    async def stats(self) -> dict[str, int]:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.port}/stats") as answer:
            return dict(await answer.json())

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()


async def _started() -> LocalStack:
    """A throwaway stack, started; a failed start stops what it had started."""
    stack = throwaway_stack()
    try:
        await asyncio.to_thread(stack.start)
    except StartError:
        await asyncio.to_thread(stack.stop)
        raise
    return stack


async def start(ratio: str | None, sink: Sink) -> LocalStack:
    """A stack whose service processes got this mode's OTEL_* settings (they inherit the environment)."""
    for key in _OTEL:
        os.environ.pop(key, None)
    if ratio is not None:
        os.environ.update({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
                           "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio})
    try:
        # Stacks started back to back: a port the previous one held can be late to free (RabbitMQ's).
        for _ in range(START_ATTEMPTS - 1):
            try:
                return await _started()
            except StartError as exc:
                print(f"  stack start failed ({str(exc).splitlines()[0]}); again", flush=True)
                await asyncio.sleep(5)
        return await _started()
    finally:
        for key in _OTEL:
            os.environ.pop(key, None)


def ok_rate(result: LoadResult) -> float:
    """Successful requests a second (bench_http's R3 counts sign-ins the same way)."""
    return (result.requests - result.errors) / result.seconds


def figures_of(requirement: str, rates: dict[str, list[float]], clients: int,
               load: tuple[float, float]) -> list[Figure]:
    """Per round, a mode's rate ÷ that round's off rate; the median over the rounds."""
    figures = []
    for mode, goal in GOALS.items():
        ratios = [traced / off for traced, off in zip(rates[mode], rates["off"], strict=True)]
        print(f"{requirement} at {mode}: ratios {[round(r, 3) for r in ratios]}", flush=True)
        figures.append(Figure(
            f"{requirement} with tracing at {mode} ÷ tracing off", median(ratios), goal, "×",
            f"{median(rates[mode]):,.1f}/s vs {median(rates['off']):,.1f}/s off at {clients} clients; a fresh "
            f"stack per mode and round, {spread(ratios)}; load average {load[0]:.2f} before, {load[1]:.2f} after"))
    return figures


async def measure_stack(mode: str, sink: Sink, http: aiohttp.ClientSession) -> tuple[float, float]:
    """Start a stack in `mode`, measure R1 and R3 on it, stop it: (R1 requests/s, R3 sign-ins/s)."""
    stack = await start(MODES[mode], sink)
    signins: SignInLoad | None = None
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        gateway = f"http://127.0.0.1:{stack.ports.gateway}"
        raw = await sign_in(http, gateway, "demo@client.example", DEMO_PASSWORD)
        read = getter(http, f"{gateway}/api/profile", raw)
        signins = SignInLoad(gateway, await create_users(stack.database_urls["profile"], SIGNIN_USERS))
        # Warm-up: connections, prepared statements, caches, the exporter's first batch.
        await closed_loop(read, concurrency=CONCURRENCY, seconds=2)
        await closed_loop(signins.call, concurrency=SIGNIN_CONCURRENCY, seconds=2)
        r1 = await closed_loop(read, concurrency=CONCURRENCY, seconds=R1_SECONDS)
        r3 = await closed_loop(signins.call, concurrency=SIGNIN_CONCURRENCY, seconds=R3_SECONDS)
        for name, result in (("R1", r1), ("R3", r3)):
            if result.errors:
                print(f"  {mode} {name}: {result.errors} failed requests", flush=True)
        return ok_rate(r1), ok_rate(r3)
    finally:
        if signins is not None:
            await signins.close()
        await asyncio.to_thread(stack.stop)


async def run() -> list[Figure]:
    sink = Sink()
    await sink.start()
    r1: dict[str, list[float]] = {mode: [] for mode in MODES}
    r3: dict[str, list[float]] = {mode: [] for mode in MODES}
    order = list(MODES)
    load_before = os.getloadavg()[0]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            for round_ in range(ROUNDS):
                for mode in order[round_ % len(order):] + order[:round_ % len(order)]:
                    read_rate, signin_rate = await measure_stack(mode, sink, http)
                    r1[mode].append(read_rate)
                    r3[mode].append(signin_rate)
                    print(f"round {round_ + 1} {mode}: R1 {read_rate:,.0f}/s, R3 {signin_rate:.1f}/s", flush=True)
        exported = await sink.stats()
    finally:
        await sink.stop()
    load = (load_before, os.getloadavg()[0])
    print(f"OTLP exported in all: {exported['bytes']:,} bytes in {exported['requests']} batches", flush=True)
    return (figures_of("R1 GET /api/profile", r1, CONCURRENCY, load)
            + figures_of("R3 password sign-ins/s", r3, SIGNIN_CONCURRENCY, load))


async def main() -> None:
    started = time.monotonic()
    figures = await run()
    print()
    for figure in figures:
        print(figure.line())
    print(f"results: {write('bench-tracing', figures)}.{{json,md}} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
