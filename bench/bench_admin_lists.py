"""The admin console's lists at size (issue #15): 10,000 clients and 100,000 users in the stack's database.

On one throwaway stack (services as processes, nginx in front), an MSP admin's session reads pages of 50
through the gateway, each page starting at a random point of its list (a keyset cursor made from a real
row, so deep pages are measured as often as the first):

- GET /api/admin/clients?limit=50&cursor=…     (with each client's user and two-factor counts)
- GET /api/admin/users?client_id=…&limit=50    (a random client's users, with last sign-in and invitation)
- GET /api/admin/users?limit=50&cursor=…       (every user, deep pages)
- GET /api/admin/users/{id}/audit?limit=50     (a random user's audit, 5 entries each, 1 of them filtered)
- searches (clients ?q=, users ?q=), reported beside the goal: a substring search has no index here (no
  pg_trgm: the service's role may not create extensions) and scans what it must.

The baseline, measured in the same run and interleaved round by round: GET /api/profile with the same
session through the same gateway (one session lookup: the lightest signed-in GET). Figures: the worst list
p99 (goal 20 ms), with that p99 ÷ the baseline's p99 in its note.

    PYTHONPATH=. uv run python -m bench.bench_admin_lists
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from portal_shared.db_bootstrap import SERVICE_SCHEMAS, dsn_for
from profile_service.admin_paging import encode_cursor

from bench.load import LoadResult, closed_loop
from bench.report import Figure, median, spread, write
from tests.support.stack import DEMO_PASSWORD, throwaway_stack

CLIENTS = 10_000
USERS = 100_000
AUDIT_PER_USER = 5
PAGE = 50
ROUNDS = 3
SECONDS = 4.0
CONCURRENCY = 2  # a few MSP staff at once; on a 2-core machine more clients mostly measure queueing
SAMPLES = 2_000  # random starting points per list

# (statement, arguments): the sizes are parameters.
SEED: list[tuple[str, tuple[int, ...]]] = [
    ("""INSERT INTO clients (id, name)
        SELECT gen_random_uuid(), initcap(substr(md5(g::text), 1, 7)) || ' ' || (ARRAY['Ltd','LLC','GmbH','Co'])[g % 4 + 1]
        FROM generate_series(1, $1::int) g""", (CLIENTS,)),  # noqa: E501
    ("""INSERT INTO users (id, email, name, role, client_id, title, two_factor_enabled, password_hash)
        SELECT gen_random_uuid(), 'u' || g || '@c' || (g % $1::int) || '.bench.example',
               initcap(substr(md5(g::text), 1, 6)) || ' ' || initcap(substr(md5((g * 7)::text), 1, 9)),
               'client_user', c.id, 'Staff', g % 3 = 0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'not-a-hash' END
        FROM generate_series(1, $2::int) g
        JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM clients) c ON c.n = g % $1::int + 1""",
     (CLIENTS, USERS)),
    ("""INSERT INTO audit_log (user_id, at, type, ip, detail)
        SELECT u.id, now() - make_interval(mins => k * 37 + (hashtext(u.id::text) & 1023)),
               CASE WHEN k % $1::int = 0 THEN 'password_changed' ELSE 'signed_in' END, '127.0.0.1', 'bench'
        FROM users u CROSS JOIN generate_series(1, $1::int) k""", (AUDIT_PER_USER,)),
    # Users without a password have an open invitation (half of them expired).
    ("""INSERT INTO password_tokens (token_hash, user_id, purpose, created_at, expires_at)
        SELECT decode(md5(u.id::text), 'hex'), u.id, 'invite', now() - interval '1 day',
               now() + CASE WHEN hashtext(u.id::text) % 2 = 0 THEN interval '2 days' ELSE interval '-1 day' END
        FROM users u WHERE u.password_hash IS NULL""", ()),
]
_CLIENT_SAMPLE = "SELECT lower(name) AS k, id FROM clients ORDER BY random() LIMIT $1"
_USER_SAMPLE = """SELECT lower(name) AS n, lower(email) AS e, id, client_id FROM users
WHERE role = 'client_user' ORDER BY random() LIMIT $1"""


async def seed(dsn: str) -> dict[str, list[Any]]:
    """The data, then ANALYZE; returns random starting points (cursors) and ids for the requests."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "profile"})
    try:
        started = time.monotonic()
        async with conn.transaction():
            for statement, args in SEED:
                await conn.execute(statement, *args)
        for table in ("clients", "users", "audit_log", "password_tokens"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        print(f"seeded {CLIENTS:,} clients, {USERS:,} users, {USERS * AUDIT_PER_USER:,} audit entries in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        clients = await conn.fetch(_CLIENT_SAMPLE, SAMPLES)
        users = await conn.fetch(_USER_SAMPLE, SAMPLES)
    finally:
        await conn.close()
    return {
        "client_cursors": [encode_cursor("clients", (r["k"], str(r["id"]))) for r in clients],
        "user_cursors": [encode_cursor("users", (r["n"], r["e"])) for r in users],
        "client_ids": [str(r["client_id"]) for r in users],
        "user_ids": [str(r["id"]) for r in users],
    }


async def sign_in(http: aiohttp.ClientSession, gateway: str) -> str:
    async with http.post(f"{gateway}/api/auth/login", json={"email": "admin@msp.example",
                                                             "password": DEMO_PASSWORD}) as r:
        if r.status != 200:
            raise RuntimeError(f"admin sign-in answered {r.status}: {await r.text()}")
        return r.cookies["portal_session"].value


Call = Callable[[], Awaitable[bool]]


def getter(http: aiohttp.ClientSession, raw: str, urls: Callable[[], str], expect: str) -> Call:
    headers = {"Cookie": f"portal_session={raw}"}

    async def call() -> bool:
        async with http.get(urls(), headers=headers) as r:
            body = await r.json(content_type=None)
            return r.status == 200 and (expect == "" or expect in body)

    return call


def lists(http: aiohttp.ClientSession, gateway: str, raw: str, data: dict[str, list[Any]]) -> dict[str, Call]:
    pick = random.Random(15).choice
    return {
        "clients (deep pages)": getter(http, raw, lambda: f"{gateway}/api/admin/clients?limit={PAGE}&cursor="
                                       f"{quote(pick(data['client_cursors']))}", "items"),
        "a client's users": getter(http, raw, lambda: f"{gateway}/api/admin/users?limit={PAGE}&client_id="
                                   f"{pick(data['client_ids'])}", "items"),
        "users (deep pages)": getter(http, raw, lambda: f"{gateway}/api/admin/users?limit={PAGE}&cursor="
                                     f"{quote(pick(data['user_cursors']))}", "items"),
        "a user's audit": getter(http, raw, lambda: f"{gateway}/api/admin/users/{pick(data['user_ids'])}/audit?"
                                 f"limit={PAGE}", "items"),
        "a user's sign-ins (type filter)": getter(
            http, raw, lambda: f"{gateway}/api/admin/users/{pick(data['user_ids'])}/audit?limit={PAGE}"
                               f"&type=signed_in", "items"),
    }


def searches(http: aiohttp.ClientSession, gateway: str, raw: str) -> dict[str, Call]:
    words = [f"{a}{b}" for a in "abcdef0123" for b in "abcdef0123"]
    pick = random.Random(16).choice
    return {
        "search clients ?q=": getter(http, raw, lambda: f"{gateway}/api/admin/clients?limit={PAGE}&q={pick(words)}",
                                     "items"),
        "search users ?q=": getter(http, raw, lambda: f"{gateway}/api/admin/users?limit={PAGE}&q={pick(words)}",
                                   "items"),
    }


def ms(x: float) -> str:
    return f"{x:.1f} ms"


async def measure(calls: dict[str, Call], baseline: Call) -> tuple[dict[str, list[LoadResult]], list[LoadResult]]:
    for call in (*calls.values(), baseline):  # warm-up: connections, prepared statements, caches
        await closed_loop(call, concurrency=CONCURRENCY, seconds=1)
    results: dict[str, list[LoadResult]] = {name: [] for name in calls}
    base: list[LoadResult] = []
    for _ in range(ROUNDS):  # interleaved, so the machine's drift hits both alike
        base.append(await closed_loop(baseline, concurrency=CONCURRENCY, seconds=SECONDS))
        for name, call in calls.items():
            results[name].append(await closed_loop(call, concurrency=CONCURRENCY, seconds=SECONDS))
    return results, base


async def run() -> list[Figure]:
    stack = throwaway_stack()
    await asyncio.to_thread(stack.start)
    try:
        assert stack.postgres is not None
        dsn = dsn_for(stack.postgres.admin_dsn, user=SERVICE_SCHEMAS["profile"],
                      password=stack.secrets()["PROFILE_DB_PASSWORD"], database="portal")
        data = await seed(dsn)
        gateway = f"http://127.0.0.1:{stack.ports.gateway}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            raw = await sign_in(http, gateway)
            baseline = getter(http, raw, lambda: f"{gateway}/api/profile", "email")
            results, base = await measure({**lists(http, gateway, raw, data), **searches(http, gateway, raw)},
                                          baseline)
    finally:
        await asyncio.to_thread(stack.stop)

    base_p99 = median([r.p99 for r in base])
    lines = []
    for name, rs in results.items():
        errors = sum(r.errors for r in rs)
        lines.append(f"{name} p50 {ms(median([r.p50 for r in rs]))} p99 {ms(median([r.p99 for r in rs]))} "
                     f"({median([r.rate for r in rs]):,.0f}/s, errors {errors})")
        print(lines[-1], flush=True)
    print(f"baseline GET /api/profile p50 {ms(median([r.p50 for r in base]))} p99 {ms(base_p99)}", flush=True)
    list_names = [n for n in results if not n.startswith("search")]
    worst = max(list_names, key=lambda n: median([r.p99 for r in results[n]]))
    worst_p99 = median([r.p99 for r in results[worst]])
    ratios = [r.p99 / b.p99 for r, b in zip(results[worst], base, strict=True)]
    errors = sum(r.errors for rs in results.values() for r in rs) + sum(r.errors for r in base)
    size = f"{CLIENTS:,} clients, {USERS:,} users, {USERS * AUDIT_PER_USER:,} audit entries; pages of {PAGE}, " \
           f"{CONCURRENCY} clients through nginx"
    # The ratio to the lightest signed-in GET says how much of the p99 is the machine's own noise; the
    # issue's goal is the absolute p99.
    return [
        Figure("Admin list page p99 (worst list) at 10k clients / 100k users", worst_p99, "<= 20", "ms",
               f"worst: {worst}; {size}; " + "; ".join(lines) + f"; errors {errors}; worst p99 ÷ GET "
               f"/api/profile p99 (baseline {ms(base_p99)}) {spread(ratios) or f'{median(ratios):.2f}'}, "
               f"median {median(ratios):.2f}"),
    ]


async def main() -> None:
    started = time.monotonic()
    figures = await run()
    print()
    for figure in figures:
        print(figure.line())
    print(f"results: {write('bench-admin-lists', figures)}.{{json,md}} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
