"""What synchronous replication to the standby costs (issue #16): R3 and the relay, synchronous ÷ asynchronous.

    PYTHONPATH=. uv run python -m bench.bench_replication

One throwaway stack with a streaming Postgres standby (LocalStack(postgres_standby=True), as the HA tests
and `make faults` run it). The primary is switched between synchronous replication (every commit waits
until the standby has flushed its WAL: what makes a failover lose no commit) and asynchronous (the same
standby streaming, no wait: `synchronous_commit = local` for the portal database), round by round, in
alternating order, so both modes meet the same machine and the same data. Each probe is a rate ÷ a control measured
right after it (bench/probes.py). Figures: synchronous ÷ asynchronous for R3 (password sign-ins), the
relay (claim, publish, confirm, mark sent) and the relay → consumer path (a commit per consumed event).
"""

from __future__ import annotations

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

ROUNDS = 4
PROBES = [("R3 password sign-ins", "r3", ">= 0.9"),
          ("Relay (claim, publish, confirm, mark sent)", "relay", ">= 0.7"),
          ("Relay → consumer (a commit per event)", "relay_to_consumer", ">= 0.5")]
# Goals chosen before measuring, from where the waits fall: R3 waits for a standby flush at its one
# commit per sign-in, behind ~25 ms of hashing; the relay at one commit per batch of 200; the consumer at
# one commit per event, nothing to hide it behind.


async def replicate(admin_dsn: str, *, synchronous: bool) -> None:
    """Every new session of the portal database waits for the standby (`on`, the server's setting) or
    only for its own flush (`local`): a database setting, which outranks the server's command line; the
    open sessions are ended so that the pools reconnect with it."""
    portal = admin_dsn.rsplit("/", 1)[0] + "/portal"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("ALTER DATABASE portal RESET synchronous_commit" if synchronous else
                           "ALTER DATABASE portal SET synchronous_commit = 'local'")
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = 'portal' AND pid <> pg_backend_pid()")
        state = await conn.fetchval("SELECT sync_state FROM pg_stat_replication LIMIT 1")
        if state != "sync":
            raise RuntimeError(f"the standby is {state!r}, not a synchronous standby")
    finally:
        await conn.close()
    check = await asyncpg.connect(portal)
    try:
        shown = await check.fetchval("SHOW synchronous_commit")
    finally:
        await check.close()
    if shown != ("on" if synchronous else "local"):
        raise RuntimeError(f"a new session has synchronous_commit {shown!r}")


async def run() -> list[Figure]:
    stack = throwaway_stack()
    stack.postgres_standby = True
    await asyncio.to_thread(stack.start)
    probes = StackProbes(stack)
    samples: dict[bool, dict[str, list[Sample]]] = {mode: {key: [] for _, key, _ in PROBES} for mode in (True, False)}
    try:
        assert stack.postgres is not None
        admin = stack.postgres.admin_dsn
        await asyncio.sleep(3)
        await probes.open()
        await probes.warm_up()
        for round_ in range(ROUNDS):
            for synchronous in ((True, False) if round_ % 2 == 0 else (False, True)):
                await replicate(admin, synchronous=synchronous)
                await probes.reconnect()  # its own pool's sessions were ended too
                await probes.warm_up()  # the services' pools reconnect on their first requests
                for _, key, _ in PROBES:
                    samples[synchronous][key].append(await getattr(probes, key)())
        await replicate(admin, synchronous=True)  # as the stack runs
    finally:
        await probes.close()
        await asyncio.to_thread(stack.stop)
    figures = []
    for name, key, goal in PROBES:
        ratios = [s.normalized / a.normalized for s, a in zip(samples[True][key], samples[False][key], strict=True)]
        sync_rate = statistics.median(s.rate for s in samples[True][key])
        async_rate = statistics.median(s.rate for s in samples[False][key])
        print(f"{name}: synchronous {sync_rate:,.0f}/s, asynchronous {async_rate:,.0f}/s; "
              f"normalized ratios {[round(r, 3) for r in ratios]}", flush=True)
        figures.append(Figure(f"{name} with synchronous replication ÷ asynchronous", statistics.median(ratios),
                              goal, "×", f"{sync_rate:,.0f}/s vs {async_rate:,.0f}/s; each ÷ its control, ratio "
                                         f"{spread(ratios)}; one standby on the same machine"))
    return figures


async def main() -> None:
    started = time.monotonic()
    figures = await run()
    for figure in figures:
        print(figure.line())
    print(f"results: {write('replication', figures)}.{{json,md}} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
