"""How cost grows with data (issue #16): R1, R3 and the relay on a small database, then on a large one.

    PYTHONPATH=. uv run python -m bench.bench_growth [--scale 1.0]

One throwaway stack (Postgres, RabbitMQ, the three services, nginx). First the figures on the database
as it starts (the demo data and the bench's 200 users); then the database grows to 1,000,000 users (one
shared password hash), 10,000,000 audit entries and 10,000,000 processed inbox rows, is vacuumed and
analyzed, and the same figures are taken again. Each figure is a rate ÷ a control measured right after it
whose work does not touch the data (bench/probes.py), so the machine's drift between the two halves
cancels; goal: each large-database figure ≥ 0.9 of its small-database one.

Where the rows go: users and audit entries in profile's schema, where R1 (the session and the account
by primary key) and R3 (the account by address, the audit and activity inserts) read and write them; the
inbox rows in the notifier's, which claims there the event of every new-device notice R3's sign-ins
send. The relay runs in a `bench` schema of the same database (its outbox does not grow: the relay's
retention prunes it), so it meets the grown tables in the server's cache, not in its own statements.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.support` when run as a file

from bench.probes import Sample, StackProbes
from bench.report import Figure, spread, write
from tests.support.stack import throwaway_stack

USERS = 1_000_000
AUDIT = 10_000_000
INBOX = 10_000_000
CLIENTS = 1_000
ROUNDS = 5
GOAL = 0.9

# Sizes are parameters; each statement is one pass of generate_series. The audit entries spread evenly
# over the grown users (10 each), at times over the last year, mostly sign-ins as in real use; written in
# user id order, so that the (user_id, …) indexes fill page after page instead of at random (minutes
# less; the index ends up a little denser than one grown by real use).
_GROW_CLIENTS = """INSERT INTO clients (id, name)
SELECT gen_random_uuid(), 'Growth client ' || g FROM generate_series(1, $1::int) g"""
_GROW_USERS = """INSERT INTO users (id, email, name, role, client_id, title, two_factor_enabled, password_hash)
SELECT gen_random_uuid(), 'g' || g || '@growth' || (g % $2::int) || '.example', 'Growth User ' || g,
       'client_user', c.id, 'Staff', g % 4 = 0, $3
FROM generate_series(1, $1::int) g
JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM clients WHERE name LIKE 'Growth client %') c
  ON c.n = g % $2::int + 1"""
_GROW_AUDIT = """INSERT INTO audit_log (user_id, at, type, ip, detail)
SELECT u.id, now() - make_interval(mins => (hashtext(u.id::text || k) & 524287)),
       CASE WHEN k % 10 = 0 THEN 'password_changed' ELSE 'signed_in' END, '192.0.2.1', 'password'
FROM (SELECT id FROM users WHERE email LIKE 'g%@growth%' ORDER BY id LIMIT $1::int / $2::int) u
CROSS JOIN generate_series(1, $2::int) k"""
# The notifier's own inbox: every sign-in of R3 from a new (account, browser) pair emails a notice, so each
# one's event is claimed in this inbox as the sign-ins run.
_GROW_INBOX = """INSERT INTO inbox (consumer, message_id, type, processed_at)
SELECT 'notifier', gen_random_uuid()::text, 'profile.password_changed', now() - make_interval(secs => g % 2592000)
FROM generate_series(1, $1::int) g"""


async def grow(profile_dsn: str, notifier_dsn: str, scale: float) -> str:
    users, audit, inbox, clients = (max(1, int(n * scale)) for n in (USERS, AUDIT, INBOX, CLIENTS))
    started = time.monotonic()
    conn = await asyncpg.connect(profile_dsn, server_settings={"search_path": "profile"})
    try:
        hash_value = await conn.fetchval("SELECT password_hash FROM users WHERE password_hash IS NOT NULL LIMIT 1")
        await conn.execute(_GROW_CLIENTS, clients)
        await conn.execute(_GROW_USERS, users, clients, hash_value)
        await conn.execute(_GROW_AUDIT, audit, audit // users)
        for table in ("clients", "users", "audit_log"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(notifier_dsn, server_settings={"search_path": "notifier"})
    try:
        await conn.execute(_GROW_INBOX, inbox)
        await conn.execute("VACUUM ANALYZE inbox")
    finally:
        await conn.close()
    took = time.monotonic() - started
    line = f"{users:,} users, {audit:,} audit entries, {inbox:,} inbox rows added in {took:.0f} s"
    print(line, flush=True)
    return line


Probe = tuple[str, str]
PROBES: list[Probe] = [("R1 GET /api/profile", "r1"), ("R3 password sign-ins", "r3"),
                       ("Relay (claim, publish, confirm, mark sent)", "relay")]


async def measure(probes: StackProbes) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {key: [] for _, key in PROBES}
    for _ in range(ROUNDS):
        for _, key in PROBES:
            samples[key].append(await getattr(probes, key)())
    for name, key in PROBES:
        print(f"  {name}: {[round(s.rate) for s in samples[key]]}/s, normalized "
              f"{[round(s.normalized, 3) for s in samples[key]]}", flush=True)
    return samples


async def run(scale: float = 1.0) -> list[Figure]:
    stack = throwaway_stack()
    await asyncio.to_thread(stack.start)
    probes = StackProbes(stack)
    try:
        await asyncio.sleep(10)  # let the services settle after start (their first migrations, connections)
        await probes.open()
        await probes.warm_up()
        print("small database:", flush=True)
        small = await measure(probes)
        grown = await grow(stack.database_urls["profile"], stack.database_urls["notifier"], scale)
        await probes.warm_up()
        print("large database:", flush=True)
        large = await measure(probes)
    finally:
        await probes.close()
        await asyncio.to_thread(stack.stop)
    figures = []
    for name, key in PROBES:
        before = statistics.median(s.normalized for s in small[key])
        after = statistics.median(s.normalized for s in large[key])
        rates = (statistics.median(s.rate for s in small[key]), statistics.median(s.rate for s in large[key]))
        figures.append(Figure(
            f"{name} on the large database ÷ on the small one", after / before, f">= {GOAL}", "×",
            f"{rates[1]:,.0f}/s vs {rates[0]:,.0f}/s; each ÷ its control (normalized {after:.3g} vs "
            f"{before:.3g}; large {spread([s.normalized for s in large[key]])}); {grown}"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the sizes (a quick try: 0.01)")
    args = parser.parse_args()
    started = time.monotonic()
    figures = asyncio.run(run(args.scale))
    for figure in figures:
        print(figure.line())
    print(f"results: {write('growth', figures)}.{{json,md}} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
