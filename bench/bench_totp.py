"""TOTP verifications per second, replay write included, against the real mfa service (issues 5 and 9).

    uv run python -m bench.bench_totp [--users 50000] [--seconds 5] [--rounds 3] [--concurrency 32]

Starts its own local PostgreSQL and RabbitMQ (tests.support.backends.LocalBackend) and a new stack
database, then runs the real mfa service as its own process (`python -m mfa_service`, LOG_LEVEL=info and
JSON logs as deployed) and a bare aiohttp+asyncpg baseline process, each with a 10-connection pool.
The load generator (bench/load.py, closed loop) calls the path sign-in uses: profile's
POST /internal/verify/totp with a service token, `{user_id, code}`. Every call is a fresh valid code of a
time step later than the user's last accepted one (steps `now` and `now+1`, inside the ±1 window), so
each success is a replay-guard UPDATE that matches a row. The baseline handler parses the same JSON and
runs one comparable UPDATE (`... SET last_used_step = $2 WHERE user_id = $1 AND last_used_step < $2`).
Rounds are interleaved (baseline, mfa, baseline, ...) so drift on the machine hits both alike.
Goal: ≥ 1,000 verifications/s; the ratio to the baseline is printed beside it. Beside the rates, the CPU
each verification costs (user + system, from /proc) in the mfa process and in Postgres: CPU time does not
depend on what else the machine runs, so it is the figure to compare across changes (issue #17 item 9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

import aiohttp
import asyncpg
import pyotp
from aiohttp import web
from mfa_service.crypto import SecretBox
from portal_devstack.process import Child, free_port, spawn, wait_until
from portal_shared import tokens
from portal_shared.runtime import run_on_service_loop

from bench import notifier_cpu
from bench.load import LoadResult, closed_loop
from bench.report import Figure, spread, write
from tests.conftest import new_stack_env, service_environ
from tests.support.backends import LocalBackend

GOAL = 1000.0
STEP = 30
POOL_SIZE = 10  # the mfa service's pool (portal_shared.runtime.database)
BASELINE_SCHEMA = "bench_totp"
BASELINE_UPDATE = f"""
UPDATE {BASELINE_SCHEMA}.totp SET last_used_step = $2 WHERE user_id = $1 AND last_used_step < $2 RETURNING 1
"""  # noqa: S608 - a constant schema name


# --- the bare baseline: aiohttp + asyncpg, one UPDATE per request --------------------------------------------


async def serve_baseline(port: int, dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)

    async def verify(request: web.Request) -> web.Response:
        body = await request.json()
        ok = await pool.fetchval(BASELINE_UPDATE, body["user_id"], body["step"])
        return web.json_response({"ok": ok is not None})

    app = web.Application()
    app.router.add_post("/verify", verify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# --- users: TOTP enabled, secrets sealed exactly as mfa seals them ------------------------------------------


class Users:
    """Hands out (user, step) pairs whose step is later than the user's last accepted one and inside the
    ±1 window: steps `now` and `now + 1` (robust to a step boundary between client and server)."""

    def __init__(self, count: int, ids: list[str] | None = None) -> None:
        self.ids = ids or [f"bench-{i:06d}" for i in range(count)]
        self.secrets = [pyotp.random_base32(32) for _ in self.ids]
        self.otps = [pyotp.TOTP(s) for s in self.secrets]
        self.last = [0] * len(self.ids)
        self.next = 0

    def take(self) -> tuple[int, int]:
        now = int(time.time()) // STEP
        for _ in range(len(self.ids)):
            i = self.next
            self.next = (self.next + 1) % len(self.ids)
            step = max(self.last[i] + 1, now)
            if step <= now + 1:
                self.last[i] = step
                return i, step
        raise RuntimeError("every user used both steps of this window: raise --users")

    def code(self, i: int, step: int) -> str:
        return self.otps[i].generate_otp(step)


class Counters:
    """The baseline's users: its UPDATE checks no clock, so any later step will do (each one matches a row)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.last = [0] * len(ids)
        self.next = 0

    def take(self) -> tuple[int, int]:
        i = self.next
        self.next = (self.next + 1) % len(self.ids)
        self.last[i] += 1
        return i, self.last[i]


async def seal_secrets(mfa_dsn: str, encryption_keys: str, ids: list[str], secrets: list[str]) -> None:
    """Enabled TOTP secrets for `ids`, sealed exactly as mfa seals them (its key, the user id as AAD)."""
    box = SecretBox.from_setting(encryption_keys)
    rows = []
    for user_id, secret in zip(ids, secrets, strict=True):
        sealed = box.encrypt(secret.encode(), associated_data=user_id.encode())
        rows.append((user_id, sealed.key_id, sealed.blob))
    conn = await asyncpg.connect(mfa_dsn)
    try:
        await conn.copy_records_to_table("totp_secrets", schema_name="mfa", records=rows,
                                         columns=["user_id", "key_id", "secret"])
        await conn.execute("UPDATE mfa.totp_secrets SET enabled_at = now() WHERE enabled_at IS NULL")
        await conn.execute("ANALYZE mfa.totp_secrets")
    finally:
        await conn.close()


async def seed(env: dict[str, str], users: Users) -> None:
    await seal_secrets(env["MFA_DATABASE_URL"], env["MFA_ENCRYPTION_KEYS"], users.ids, users.secrets)
    admin = await asyncpg.connect(env["ADMIN_DATABASE_URL"])
    try:
        await admin.execute(f"CREATE SCHEMA {BASELINE_SCHEMA}")
        await admin.execute(f"CREATE TABLE {BASELINE_SCHEMA}.totp (user_id text PRIMARY KEY, "
                            "last_used_step bigint NOT NULL DEFAULT 0)")
        await admin.copy_records_to_table("totp", schema_name=BASELINE_SCHEMA, records=[(u,) for u in users.ids],
                                          columns=["user_id"])
        await admin.execute(f"ANALYZE {BASELINE_SCHEMA}.totp")
    finally:
        await admin.close()


# --- processes ----------------------------------------------------------------------------------------------


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


def start_mfa(env: dict[str, str], logs: Path) -> tuple[Child, int]:
    port = free_port()
    child_env = service_environ(env, "mfa", HTTP_PORT=port, PROFILE_URL="http://127.0.0.1:9",
                                LOG_LEVEL="info", LOG_FORMAT="json")
    child = spawn("mfa", [sys.executable, "-m", "mfa_service"], log_path=logs / "mfa.log",
                  env={**child_env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    wait_until(child, lambda: http_ok(f"http://127.0.0.1:{port}/health/ready"), timeout=60, what="/health/ready")
    return child, port


def start_baseline(env: dict[str, str], logs: Path) -> tuple[Child, int]:
    port = free_port()
    child = spawn("baseline", [sys.executable, "-m", "bench.bench_totp", "--baseline-server", str(port),
                               env["ADMIN_DATABASE_URL"]], log_path=logs / "baseline.log",
                  env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])}, cwd=Path(__file__).resolve().parents[1])
    from portal_devstack.process import tcp_open

    wait_until(child, lambda: tcp_open(port), timeout=30, what="listening")
    return child, port


# --- load -----------------------------------------------------------------------------------------------------


async def measure(session: aiohttp.ClientSession, url: str, users: Users | Counters, *, key: str | None,
                  concurrency: int, seconds: float) -> LoadResult:
    auth: dict[str, str] = {}
    auth_at = 0.0

    async def call() -> bool:
        nonlocal auth, auth_at
        i, step = users.take()
        if key is None:
            body: dict[str, object] = {"user_id": users.ids[i], "step": step}
        else:
            if time.monotonic() - auth_at > 20:  # profile's service tokens live 60 s
                auth, auth_at = tokens.service_authorization(key, issuer="profile", audience="mfa"), time.monotonic()
            assert isinstance(users, Users)
            body = {"user_id": users.ids[i], "code": users.code(i, step)}
        async with session.post(url, data=json.dumps(body), headers={**auth, "Content-Type": "application/json"}
                                ) as response:
            answer = await response.json()
        return response.status == 200 and answer.get("ok") is True

    return await closed_loop(call, concurrency=concurrency, seconds=seconds)


async def run(*, users: int = 50_000, seconds: float = 5.0, rounds: int = 3, concurrency: int = 32
              ) -> list[Figure]:
    logs = Path(tempfile.mkdtemp(prefix="bench-totp-"))
    backend = await asyncio.to_thread(LocalBackend)
    children: list[Child] = []
    try:
        env = await new_stack_env(backend)
        mfa, mfa_port = await asyncio.to_thread(start_mfa, env, logs)  # applies mfa's migrations
        children.append(mfa)
        population = Users(users)
        await seed(env, population)
        baseline, baseline_port = await asyncio.to_thread(start_baseline, env, logs)
        children.append(baseline)
        mfa_url = f"http://127.0.0.1:{mfa_port}/internal/verify/totp"
        baseline_url = f"http://127.0.0.1:{baseline_port}/verify"
        counters = Counters(population.ids)
        key = env["SERVICE_AUTH_KEY"]

        connector = aiohttp.TCPConnector(limit=concurrency)
        cpu_groups = {"mfa": {mfa.process.pid}, "baseline": {baseline.process.pid}}
        cpu_markers = {"postgres": str(backend.root / "pg")}
        mfa_cpu: list[dict[str, float]] = []
        async with aiohttp.ClientSession(connector=connector) as session:
            await measure(session, baseline_url, counters, key=None, concurrency=concurrency, seconds=1)
            await measure(session, mfa_url, population, key=key, concurrency=concurrency, seconds=1)
            bare: list[LoadResult] = []
            real: list[LoadResult] = []
            for _ in range(rounds):
                bare.append(await measure(session, baseline_url, counters, key=None, concurrency=concurrency,
                                          seconds=seconds))
                before = notifier_cpu.snapshot(cpu_groups, cpu_markers)
                real.append(await measure(session, mfa_url, population, key=key, concurrency=concurrency,
                                          seconds=seconds))
                after = notifier_cpu.snapshot(cpu_groups, cpu_markers)
                mfa_cpu.append(notifier_cpu.per_item_ms(before, after, max(real[-1].requests, 1)))
        errors = sum(r.errors for r in real)
        if errors:
            print(f"warning: {errors} mfa verifications answered ok=false (log: {logs / 'mfa.log'})", flush=True)
        real_rates = [r.rate for r in real]
        bare_rates = [r.rate for r in bare]
        rate, bare_rate = statistics.median(real_rates), statistics.median(bare_rates)
        p50, p99 = (statistics.median([getattr(r, p) for r in real]) for p in ("p50", "p99"))
        b50, b99 = (statistics.median([getattr(r, p) for r in bare]) for p in ("p50", "p99"))
        mfa_ms = statistics.median([c["mfa"] for c in mfa_cpu])
        pg_ms = statistics.median([c["postgres"] for c in mfa_cpu])
        return [
            Figure("TOTP verifications/s incl. replay write (mfa /internal/verify/totp)", rate, f">= {GOAL:,.0f}",
                   "/s", f"{spread(real_rates)}; p50 {p50:.1f} ms, p99 {p99:.1f} ms at concurrency {concurrency}; "
                         f"{errors} failed"),
            Figure("bare aiohttp+asyncpg UPDATE baseline (same run)", bare_rate, ">= 0", "/s",
                   f"{spread(bare_rates)}; p50 {b50:.1f} ms, p99 {b99:.1f} ms; informational"),
            Figure("TOTP verify ÷ bare baseline", rate / bare_rate, ">= 0", "",
                   "informational: the issues set no ratio goal for this figure"),
            Figure("mfa CPU per TOTP verification", mfa_ms, ">= 0", "ms",
                   f"informational (issue #17 item 9): user + system CPU of the mfa process; "
                   f"Postgres {pg_ms:.2f} ms per verification"),
        ]
    finally:
        for child in reversed(children):
            await asyncio.to_thread(child.stop)
        await asyncio.to_thread(backend.close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--baseline-server", nargs=2, metavar=("PORT", "DSN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        run_on_service_loop(serve_baseline(int(args.baseline_server[0]), args.baseline_server[1]))
        return
    figures = asyncio.run(run(users=args.users, seconds=args.seconds, rounds=args.rounds,
                              concurrency=args.concurrency))
    for figure in figures:
        print(figure.line())
    print(f"written to {write('totp', figures)}")


if __name__ == "__main__":
    main()
