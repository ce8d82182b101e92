"""HTTP benchmark of the profile service, on one throwaway stack (Postgres, RabbitMQ, mail sink, the three
services as processes, nginx — all on loopback):

- R1: GET /api/profile through nginx with a signed-in session ÷ a bare aiohttp+asyncpg server (its own
  process, bench/http_bare.py) running the same SQL on the same database; p50/p99 of both.
- R3: password sign-ins/s (POST /api/auth/login through nginx, no 2FA, 200 distinct users created in the
  database) ÷ raw argon2id hashes/s with profile's parameters in a thread pool of profile's cap (its own
  process, bench/http_hash.py).
- GET /api/profile p99 during a sign-in flood ÷ idle GET p99, with a control: the same GET p99 while only
  SCHED_IDLE busy loops run (bench/idle_spinner.py), the floor any background CPU work sets on this machine.
- Wrong password on an existing account vs on an unknown address: the two median latencies (POST
  /api/auth/login through nginx, one at a time, interleaved), whose difference must stay under 0.5 ms
  so timing does not tell which addresses have accounts (each existing account gets one wrong password,
  so none is locked).
- Idle RSS of the three service processes together (VmRSS from /proc).

    PYTHONPATH=. uv run python -m bench.bench_http

Per-IP limits: nginx's limit_req and profile's AUTH_RATE_PER_MINUTE (600/min each, per client address)
are left as configured. The sign-in load is spread over many client addresses instead — each load
client binds its own loopback source address (127.0.0.10 …), as many users behind different addresses
would — so neither limit is hit and neither is raised.

Every load phase has a warm-up; each figure is the median of several rounds (the spread is in the note).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import argon2
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from portal_devstack.process import free_port
from portal_shared.db_bootstrap import SERVICE_SCHEMAS, dsn_for
from portal_shared.events import UserCreated
from portal_shared.outbox import enqueue
from profile_service.config import Settings
from profile_service.passwords import OWASP_PARAMETERS, normalize

from bench.load import LoadResult, closed_loop
from bench.report import Figure, median, percentile, spread, write
from tests.support.stack import DEMO_PASSWORD, throwaway_stack

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 5
GET_CONCURRENCY = 8  # R1: closed-loop clients against each server
GET_SECONDS = 4.0
SIGNIN_CONCURRENCY = 8  # more than profile's hashing cap, so the hashing slots never idle
SIGNIN_SECONDS = 5.0
SIGNIN_USERS = 200
SOURCE_ADDRESSES = 48  # distinct client addresses for the sign-in load (per-IP limits: 600/min each)
FLOOD_ROUNDS = 3
FLOOD_GET_CONCURRENCY = 2  # a few users reading their profile while the sign-in flood runs
FLOOD_SECONDS = 4.0
USER_PASSWORD = "bench sign-in password 7"
WRONG_TRIES = 75  # wrong-password sign-ins of each kind (existing account, unknown address)
WRONG_WARMUP = 10


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def services_rss(stack: Any) -> tuple[float, dict[str, float]]:
    parts = {c.name: rss_mb(c.process.pid) for c in stack.children if c.name.endswith("service") and c.running()}
    return sum(parts.values()), parts


async def create_users(dsn: str, count: int) -> list[str]:
    """`count` client users with one known password (hashed once, with profile's parameters), each with its
    `profile.user_created` event as the admin API writes it, so that the notifier knows where to send
    their new-device notices (a user it does not know would have them retried, not sent). Returns once
    the relay has published every event."""
    password_hash = argon2.PasswordHasher(type=argon2.Type.ID, **OWASP_PARAMETERS).hash(normalize(USER_PASSWORD))
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "profile"})
    try:
        client_id = await conn.fetchval("SELECT id FROM clients ORDER BY created_at LIMIT 1")
        run = uuid.uuid4().hex[:6]
        users = [(uuid.uuid4(), f"bench-{run}-{i}@bench.example", f"Bench User {i}") for i in range(count)]
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO users (id, email, name, role, client_id, password_hash) "
                "VALUES ($1, $2, $3, 'client_user', $4, $5)",
                [(user_id, email, name, client_id, password_hash) for user_id, email, name in users])
            events = [await enqueue(conn, UserCreated(user_id=str(user_id), email=email, name=name), source="profile")
                      for user_id, email, name in users]
        deadline = time.monotonic() + 120
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1::uuid[]) AND published_at IS NULL",
                                  [e.id for e in events]):
            if time.monotonic() > deadline:
                raise TimeoutError("the relay did not publish the bench users' events in 120 s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # the consumers take them within milliseconds of the publish
    finally:
        await conn.close()
    return [email for _, email, _ in users]


async def sign_in(http: aiohttp.ClientSession, gateway: str, email: str, password: str) -> str:
    async with http.post(f"{gateway}/api/auth/login", json={"email": email, "password": password}) as r:
        body = await r.json()
        if r.status != 200 or body.get("state") != "signed_in":
            raise RuntimeError(f"sign-in of {email} answered {r.status}: {body}")
        return r.cookies["portal_session"].value


def getter(http: aiohttp.ClientSession, url: str, raw_session: str) -> Any:
    headers = {"Cookie": f"portal_session={raw_session}"}

    async def call() -> bool:
        async with http.get(url, headers=headers) as r:
            await r.read()
            return r.status == 200

    return call


def source_sessions() -> list[aiohttp.ClientSession]:
    """One client session per sign-in source address (127.0.0.10 …), keeping no cookies: the sign-in loads
    spread over them so that no per-IP limit is reached."""
    return [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{10 + k}", 0), limit=0),
                                  cookie_jar=aiohttp.DummyCookieJar()) for k in range(SOURCE_ADDRESSES)]


def device_header(devices: dict[str, str] | None, email: str) -> dict[str, str] | None:
    """The Cookie header with the user's device cookie, when the load keeps them and has one."""
    value = devices.get(email) if devices is not None else None
    return {"Cookie": f"portal_device={value}"} if value else None


def keep_device(devices: dict[str, str] | None, email: str, response: aiohttp.ClientResponse) -> None:
    if devices is not None and "portal_device" in response.cookies:
        devices[email] = response.cookies["portal_device"].value


class SignInLoad:
    """POST /api/auth/login round robin over many users and many client source addresses.

    `known_devices`: each user's browser keeps the device cookie its last sign-in set (as a browser does),
    so after a first sign-in a user signs in from a known device (no new-device notice)."""

    def __init__(self, gateway: str, emails: list[str], *, known_devices: bool = False) -> None:
        self.url = f"{gateway}/api/auth/login"
        self.emails = itertools.cycle(emails)
        self.sessions = source_sessions()
        self.next_session = itertools.cycle(self.sessions)
        self.statuses: dict[int, int] = {}
        self.devices: dict[str, str] | None = {} if known_devices else None

    async def call(self) -> bool:
        email = next(self.emails)
        async with next(self.next_session).post(self.url, json={"email": email, "password": USER_PASSWORD},
                                                headers=device_header(self.devices, email)) as r:
            await r.read()
            keep_device(self.devices, email, r)
            self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            return r.status == 200

    async def close(self) -> None:
        for s in self.sessions:
            await s.close()


async def start_bare(dsn: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.http_bare", "--dsn", dsn,
                                                "--port", str(port), stdout=asyncio.subprocess.PIPE, env=env,
                                                cwd=REPO)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    if line.strip() != b"ready":
        raise RuntimeError(f"bare server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


async def raw_hash_rate(threads: int, seconds: float) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.http_hash", "--threads", str(threads), "--seconds", str(seconds),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    out, _ = await proc.communicate()
    return float(json.loads(out)["rate"])


def ms(x: float) -> str:
    return f"{x:.1f} ms"


async def bench_r1(http: aiohttp.ClientSession, gateway: str, bare: str, raw: str) -> list[Figure]:
    via_nginx = getter(http, f"{gateway}/api/profile", raw)
    direct = getter(http, f"{bare}/api/profile", raw)
    for call in (via_nginx, direct):  # warm-up: connections, prepared statements, caches
        await closed_loop(call, concurrency=GET_CONCURRENCY, seconds=2)
    ours: list[LoadResult] = []
    base: list[LoadResult] = []
    for _ in range(ROUNDS):  # interleaved, so drift hits both alike
        ours.append(await closed_loop(via_nginx, concurrency=GET_CONCURRENCY, seconds=GET_SECONDS))
        base.append(await closed_loop(direct, concurrency=GET_CONCURRENCY, seconds=GET_SECONDS))
    errors = sum(r.errors for r in ours + base)
    ratios = [o.rate / b.rate for o, b in zip(ours, base, strict=True)]
    ratio = median(ratios)
    p = {name: (median([r.p50 for r in rs]), median([r.p99 for r in rs])) for name, rs in
         (("nginx", ours), ("bare", base))}
    rate_o, rate_b = median([r.rate for r in ours]), median([r.rate for r in base])
    print(f"R1 GET /api/profile via nginx {rate_o:,.0f}/s (p50 {ms(p['nginx'][0])}, p99 {ms(p['nginx'][1])}); "
          f"bare {rate_b:,.0f}/s (p50 {ms(p['bare'][0])}, p99 {ms(p['bare'][1])}); ratio {ratio:.2f}; errors {errors}",
          flush=True)
    return [Figure("R1 GET /api/profile via nginx ÷ bare aiohttp+asyncpg", ratio, ">= 0.7", "×",
                   f"{rate_o:,.0f}/s vs {rate_b:,.0f}/s at {GET_CONCURRENCY} clients; via nginx p50 "
                   f"{ms(p['nginx'][0])} p99 {ms(p['nginx'][1])}, bare p50 {ms(p['bare'][0])} p99 "
                   f"{ms(p['bare'][1])}; ratio {spread(ratios)}; errors {errors}")]


async def bench_r3(gateway: str, emails: list[str], threads: int) -> tuple[Figure, SignInLoad]:
    load = SignInLoad(gateway, emails)
    await closed_loop(load.call, concurrency=SIGNIN_CONCURRENCY, seconds=3)  # warm-up
    signins: list[float] = []
    hashes: list[float] = []
    errors = 0
    for _ in range(ROUNDS):
        result = await closed_loop(load.call, concurrency=SIGNIN_CONCURRENCY, seconds=SIGNIN_SECONDS)
        signins.append((result.requests - result.errors) / result.seconds)
        errors += result.errors
        hashes.append(await raw_hash_rate(threads, SIGNIN_SECONDS))  # the stack is idle meanwhile
    ratios = [s / h for s, h in zip(signins, hashes, strict=True)]
    ratio = median(ratios)
    print(f"R3 sign-ins {median(signins):.1f}/s (runs {[round(s, 1) for s in signins]}); raw argon2 "
          f"{median(hashes):.1f}/s with {threads} threads (runs {[round(h, 1) for h in hashes]}); ratio {ratio:.2f}; "
          f"statuses {load.statuses}", flush=True)
    return Figure("R3 password sign-ins/s ÷ raw argon2id hashes/s", ratio, ">= 0.8", "×",
                  f"{median(signins):.1f}/s vs {median(hashes):.1f}/s ({threads} hashing threads, m=19 MiB t=2 p=1); "
                  f"{SIGNIN_CONCURRENCY} clients over {SOURCE_ADDRESSES} source addresses, {len(emails)} users; "
                  f"ratio {spread(ratios)}; failed sign-ins {errors}"), load


async def bench_wrong_password(gateway: str, emails: list[str]) -> Figure:
    """Median latency of a wrong password: existing account vs unknown address, interleaved one by one."""
    url = f"{gateway}/api/auth/login"
    # Own source addresses (127.0.0.200 …), so the per-IP limits see a few requests a second each.
    clients = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{200 + k}", 0)),
                                     cookie_jar=aiohttp.DummyCookieJar()) for k in range(8)]
    rotation = itertools.cycle(clients)
    run = uuid.uuid4().hex[:6]

    async def attempt(email: str) -> float:
        started = time.perf_counter()
        async with next(rotation).post(url, json={"email": email, "password": "not the password 1"}) as r:
            await r.read()
            if r.status != 401:
                raise RuntimeError(f"wrong password for {email} answered {r.status}")
        return (time.perf_counter() - started) * 1000

    existing: list[float] = []
    unknown: list[float] = []
    try:
        accounts = iter(emails)
        for i in range(WRONG_WARMUP + WRONG_TRIES):
            pair = [(existing, next(accounts)), (unknown, f"nobody-{run}-{i}@bench.example")]
            if i % 2:  # alternate which goes first, so drift and caches favour neither
                pair.reverse()
            for samples, email in pair:
                took = await attempt(email)
                if i >= WRONG_WARMUP:
                    samples.append(took)
    finally:
        for client in clients:
            await client.close()
    a, b = median(existing), median(unknown)
    # Each pair ran back to back, so its difference is nearly free of the machine's drift: a second opinion.
    paired = median([e - u for e, u in zip(existing, unknown, strict=True)])
    print(f"wrong password: existing account median {a:.2f} ms (p90 {percentile(existing, 90):.2f}), unknown "
          f"address {b:.2f} ms (p90 {percentile(unknown, 90):.2f}); difference {a - b:+.2f} ms, median of "
          f"paired differences {paired:+.2f} ms", flush=True)
    return Figure("Wrong password: |existing account − unknown address| median latency", abs(a - b), "<= 0.5", "ms",
                  f"existing {a:.2f} ms, unknown {b:.2f} ms (medians of {WRONG_TRIES} each, interleaved, one at a "
                  f"time through nginx; p90 {percentile(existing, 90):.2f} vs {percentile(unknown, 90):.2f} ms; "
                  f"median of paired differences {paired:+.2f} ms)")


async def spinning(seconds: float) -> asyncio.subprocess.Process:
    """The control: a SCHED_IDLE busy loop on every core, no application code (bench/idle_spinner.py)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.idle_spinner", "--threads", str(os.cpu_count() or 2), "--seconds",
        str(seconds), env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)


async def bench_flood(http: aiohttp.ClientSession, gateway: str, raw: str, load: SignInLoad) -> Figure:
    get = getter(http, f"{gateway}/api/profile", raw)
    idle: list[float] = []
    flood: list[float] = []
    control: list[float] = []
    flood_rates: list[float] = []
    await closed_loop(get, concurrency=FLOOD_GET_CONCURRENCY, seconds=1)
    for _ in range(FLOOD_ROUNDS):
        idle.append((await closed_loop(get, concurrency=FLOOD_GET_CONCURRENCY, seconds=FLOOD_SECONDS)).p99)
        flooding = asyncio.create_task(closed_loop(load.call, concurrency=SIGNIN_CONCURRENCY,
                                                   seconds=FLOOD_SECONDS + 2))
        await asyncio.sleep(1)  # the hashing slots are full and the queue is building
        flood.append((await closed_loop(get, concurrency=FLOOD_GET_CONCURRENCY, seconds=FLOOD_SECONDS)).p99)
        flood_rates.append((await flooding).rate)
        spinner = await spinning(FLOOD_SECONDS + 1.5)
        await asyncio.sleep(0.5)
        control.append((await closed_loop(get, concurrency=FLOOD_GET_CONCURRENCY, seconds=FLOOD_SECONDS)).p99)
        await spinner.wait()
    ratios = [f / i for f, i in zip(flood, idle, strict=True)]
    ratio = median(ratios)
    control_ratio = median([c / i for c, i in zip(control, idle, strict=True)])
    print(f"GET p99 idle {ms(median(idle))} (runs {[round(x, 1) for x in idle]}), during sign-in flood "
          f"{ms(median(flood))} (runs {[round(x, 1) for x in flood]}, {median(flood_rates):.0f} sign-ins/s); "
          f"ratio {ratio:.2f}; control (SCHED_IDLE busy loops, no sign-ins) {ms(median(control))}, "
          f"ratio {control_ratio:.2f}", flush=True)
    return Figure("GET /api/profile p99 during sign-in flood ÷ idle p99", ratio, "<= 2", "×",
                  f"idle p99 {ms(median(idle))}, flood p99 {ms(median(flood))} at {FLOOD_GET_CONCURRENCY} GET "
                  f"clients, flood {SIGNIN_CONCURRENCY} sign-in clients ({median(flood_rates):.0f}/s); "
                  f"ratio {spread(ratios)}; control: with only a SCHED_IDLE busy loop per core (no sign-ins, no "
                  f"argon2) p99 {ms(median(control))} = {control_ratio:.2f}× idle")


async def run() -> list[Figure]:
    stack = throwaway_stack()
    await asyncio.to_thread(stack.start)
    bare_proc: asyncio.subprocess.Process | None = None
    try:
        assert stack.postgres is not None
        values = stack.secrets()
        dsn = dsn_for(stack.postgres.admin_dsn, user=SERVICE_SCHEMAS["profile"],
                      password=values["PROFILE_DB_PASSWORD"], database="portal")
        settings = Settings.from_env({**stack.env, "DATABASE_URL": dsn})
        gateway = f"http://127.0.0.1:{stack.ports.gateway}"

        await asyncio.sleep(3)  # let the services settle after start
        idle_rss, parts = services_rss(stack)
        print(f"idle RSS {idle_rss:.0f} MB {({k: round(v) for k, v in parts.items()})}", flush=True)

        emails = await create_users(dsn, SIGNIN_USERS)
        wrong_emails = await create_users(dsn, WRONG_WARMUP + WRONG_TRIES)  # each gets one wrong password
        bare_proc, bare = await start_bare(dsn)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            raw = await sign_in(http, gateway, "demo@client.example", DEMO_PASSWORD)
            figures = await bench_r1(http, gateway, bare, raw)
            figures.append(await bench_wrong_password(gateway, wrong_emails))
            r3, load = await bench_r3(gateway, emails, settings.hash_concurrency)
            figures.append(r3)
            try:
                figures.append(await bench_flood(http, gateway, raw, load))
            finally:
                await load.close()
        await asyncio.sleep(2)
        after_rss, _ = services_rss(stack)
        figures.append(Figure("Idle RSS of profile + mfa + notifier", idle_rss, "<= 300", "MB",
                              f"{', '.join(f'{k.split()[0]} {v:.0f}' for k, v in parts.items())} MB after start; "
                              f"{after_rss:.0f} MB together idle after the load"))
        return figures
    finally:
        if bare_proc is not None and bare_proc.returncode is None:
            bare_proc.terminate()
            await bare_proc.wait()
        await asyncio.to_thread(stack.stop)


async def main() -> None:
    started = time.monotonic()
    figures = await run()
    print()
    for figure in figures:
        print(figure.line())
    print(f"results: {write('bench-http', figures)}.{{json,md}} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
