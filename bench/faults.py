"""`make faults`: fault injection against the whole stack on loopback; writes bench/results/faults-*.

One throwaway stack (tests.support.stack.throwaway_stack: random ports, a temp directory) serves every
scenario in turn; each scenario counts only the events it wrote itself (emails matched by Message-ID
<event id@portal>). Bounded: every wait has a deadline, and a scenario that cannot finish reports FAIL
with a note instead of hanging. `python -m bench.faults [scenario ...]` runs a subset (names below).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

from bench.report import Figure, write  # noqa: E402

# The notifier's lease (how long a claimed job waits before another sender may take it) is 60 s by
# default; after a SIGKILL, jobs in flight wait it out. A shorter lease keeps the run bounded without
# changing what is measured (loss and duplicates); everything else runs with the services' defaults.
LEASE_SECONDS = "20"
Scenario = Callable[..., Awaitable[list[Figure]]]


async def main(wanted: list[str]) -> int:
    from bench import faults_fuzz, faults_ha, faults_scenarios
    from bench.faults_stack import FaultStack
    from tests.support.stack import throwaway_stack

    scenarios: dict[str, Scenario] = {
        "rabbitmq": faults_scenarios.rabbitmq_restarts,
        "kills": faults_scenarios.kills,
        "smtp": faults_scenarios.smtp_outage,
        "postgres": faults_scenarios.postgres_restart,
        "poison": faults_scenarios.poison,
        "guessing": faults_scenarios.guessing,
        "schemathesis": faults_fuzz.schemathesis_run,
        # High availability (#16): each starts its own stack (3 RabbitMQ nodes, a synchronous standby).
        "ha-rabbitmq": faults_ha.rabbitmq_node_loss,
        "ha-postgres": faults_ha.postgres_promotion,
        "ha-quorum": faults_ha.rabbitmq_quorum_loss,
        "ha-replicas": faults_ha.with_replicas,
    }
    unknown = [w for w in wanted if w not in scenarios]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {list(scenarios)}")
        return 2
    logging.getLogger("asyncpg").setLevel(logging.CRITICAL)  # our pools' reconnect noise during outages
    os.environ.setdefault("NOTIFIER_LEASE_SECONDS", LEASE_SECONDS)
    os.environ.setdefault("LOG_LEVEL", "warning")
    started = time.monotonic()
    stack = throwaway_stack()
    print(f"starting the whole stack under {stack.var} ...", flush=True)
    figures: list[Figure] = []
    fs = FaultStack(stack)
    try:
        await asyncio.to_thread(stack.start)
        await fs.open()
        print(f"stack up in {time.monotonic() - started:.0f} s (gateway {stack.base_url})", flush=True)
        for name in wanted or list(scenarios):
            print(f"\n=== {name}", flush=True)
            t0 = time.monotonic()
            try:
                results = await scenarios[name](fs)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                traceback.print_exc()
                results = [Figure(f"{name} ran", 0, ">= 1", note=f"{type(exc).__name__}: {exc}"[:300])]
            for figure in results:
                print(figure.line() + (f"  [{figure.note}]" if figure.note else ""), flush=True)
            print(f"({name}: {time.monotonic() - t0:.0f} s)", flush=True)
            figures.extend(results)
    finally:
        await fs.close()
        await asyncio.to_thread(stack.stop)
    path = write("faults", figures)
    print(f"\n{sum(f.passed for f in figures)}/{len(figures)} goals met in {time.monotonic() - started:.0f} s; "
          f"results in {path}.json and .md")
    for figure in figures:
        print(figure.line())
    return 0 if all(f.passed for f in figures) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
