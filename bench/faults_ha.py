"""High-availability faults (#16): a 3-node RabbitMQ cluster and a synchronous Postgres standby.

Each scenario starts its own HA stack (LocalStack with rabbitmq_nodes=3, postgres_standby=True), so it
can be registered in `make faults` beside the single-node scenarios, and `tests/e2e/test_ha_failover.py`
runs the same code with smaller counts. Every count is of the events the scenario itself committed
(emails matched by Message-ID <event id@portal>).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
from portal_shared import db
from portal_shared.events import Event, PasswordChanged

from bench.faults_stack import FaultStack, MailCounter, http_ok, wait_until
from bench.report import Figure
from tests.support.portal_client import Portal
from tests.support.stack import DEMO_PASSWORD, throwaway_ha_stack

SERVICES = ("profile", "mfa", "notifier")
NOTIFIER_QUEUE = "notifier.events"


@asynccontextmanager
async def running_ha_stack(*, replicas: int = 1) -> AsyncIterator[FaultStack]:
    """An HA stack with a FaultStack on it whose pools use the services' own multi-host DSNs; `replicas`
    processes of each service (nginx balances over them; each replica relays and consumes)."""
    stack = throwaway_ha_stack()
    stack.replicas = replicas
    fs = FaultStack(stack)
    try:
        await asyncio.to_thread(stack.start)
        for service in SERVICES:
            fs.pools[service] = await db.create_pool(stack.database_urls[service], schema=service,
                                                     min_size=0, max_size=4)
        fs.mail = MailCounter(stack.mail_dir)
        yield fs
    finally:
        await fs.close()
        await asyncio.to_thread(stack.stop)


@dataclass
class Outcome:
    events: list[str] = field(default_factory=list)
    lost: int = 0
    duplicates: int = 0
    all_emails_seconds: float | None = None
    recovered_seconds: float | None = None  # consumers back (broker) / serving again (database)
    sessions: int = 0
    sessions_lost: int = 0
    note: str = ""


async def _users(fs: FaultStack) -> list[str]:
    if not await wait_until(lambda: _has_users(fs), within=60):
        raise RuntimeError("the notifier's user projection stayed empty (no profile.user_created consumed)")
    return await fs.notifier_user_ids(10)


async def _has_users(fs: FaultStack) -> bool:
    return bool(await fs.notifier_user_ids(1))


async def _write_retrying(fs: FaultStack, events: list[Event]) -> list[str]:
    """Commit `events` to profile's outbox, retrying while the database is away; the ids once committed.

    A commit whose answer was lost may have happened without being counted here: such an event is not
    one we check, so it cannot be miscounted as lost."""
    while True:
        try:
            return [e.id for e in await fs.write("profile", events)]
        # InternalClientError: asyncpg's "another operation is in progress" on a connection that broke
        # mid-transaction when the primary died (seen on this writer's own pool, never on a service's).
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError,
                TimeoutError):
            await asyncio.sleep(0.1)


async def _burst(fs: FaultStack, users: list[str], total: int, out: list[str], *, per_tx: int = 10,
                 pause: float = 0.03) -> None:
    for start in range(0, total, per_tx):
        batch: list[Event] = [PasswordChanged(user_id=users[n % len(users)], method="change")
                              for n in range(start, min(start + per_tx, total))]
        out.extend(await _write_retrying(fs, batch))
        await asyncio.sleep(pause)


def _flowing_since(fs: FaultStack, ids: list[str], start: int) -> bool:
    """An event committed after index `start` was emailed: relay, broker and consumer all work again.

    (The management API's consumer count lags by its statistics interval, 5 s; an email does not.)"""
    assert fs.mail is not None
    return fs.mail.arrived(ids[start:]) > 0


async def broker_leader_kill(fs: FaultStack, *, events: int = 1000) -> Outcome:
    """SIGKILL the node leading the notifier's queue during a burst, then bring it back."""
    cluster = fs.stack.rabbit_cluster
    assert cluster is not None and fs.mail is not None
    users = await _users(fs)
    leader = str(cluster.queue("/", NOTIFIER_QUEUE)["leader"])
    members = cluster.queue("/", NOTIFIER_QUEUE).get("members")
    outcome = Outcome()
    writer = asyncio.create_task(_burst(fs, users, events, outcome.events))
    await wait_until(lambda: _async(len(outcome.events) >= events // 3), within=60, interval=0.02)
    killed_at, written = time.monotonic(), len(outcome.events)
    await asyncio.to_thread(cluster.node(leader).kill)
    back = await wait_until(lambda: _async(_flowing_since(fs, outcome.events, written)), within=60, interval=0.1)
    outcome.recovered_seconds = time.monotonic() - killed_at if back else None
    await writer
    await asyncio.to_thread(cluster.restart_node, cluster.node(leader))
    outcome.all_emails_seconds = await fs.mail.wait_all(outcome.events, within=180)
    await _quiet_period(fs, outcome.events)
    outcome.lost, outcome.duplicates = fs.mail.outcome(outcome.events)
    new_leader = cluster.queue("/", NOTIFIER_QUEUE).get("leader")
    outcome.note = f"killed {leader} (members {members}); new leader {new_leader}; node back and rejoined"
    return outcome


async def quorum_loss(fs: FaultStack, *, events: int = 500, outage: float = 30.0) -> Outcome:
    """One node SIGKILLed, then a second stopped for `outage` seconds (1 of 3 left: no quorum, publishes
    wait unconfirmed, the outbox keeps the rows): every event arrives once both are back."""
    cluster = fs.stack.rabbit_cluster
    assert cluster is not None and fs.mail is not None
    users = await _users(fs)
    first, second = cluster.nodes[0], cluster.nodes[1]
    outcome = Outcome()
    writer = asyncio.create_task(_burst(fs, users, events, outcome.events, pause=outage / (events / 10) * 1.5))
    await wait_until(lambda: _async(len(outcome.events) >= events // 5), within=60, interval=0.02)
    await asyncio.to_thread(first.kill)
    await asyncio.to_thread(second.stop)
    stopped_at = time.monotonic()
    unsent_peak = 0
    while time.monotonic() - stopped_at < outage:  # the outage itself: bounded, its length is the scenario
        unsent_peak = max(unsent_peak, await fs.unsent("profile"))
        await asyncio.sleep(0.5)
    await asyncio.to_thread(second.start)  # 2 of 3 again: the quorum is back
    # Recovered: everything committed up to the quorum's return is emailed (the burst may be over by then,
    # so "an event written afterwards arrives" would wait for nothing). The killed node returns after.
    back_at, backlog = time.monotonic(), list(outcome.events)
    back = await wait_until(lambda: _async(fs.mail is not None and fs.mail.arrived(backlog) == len(backlog)),
                            within=120, interval=0.1)
    outcome.recovered_seconds = time.monotonic() - back_at if back else None
    await asyncio.to_thread(cluster.restart_node, first)
    await writer
    outcome.all_emails_seconds = await fs.mail.wait_all(outcome.events, within=180)
    await _quiet_period(fs, outcome.events)
    outcome.lost, outcome.duplicates = fs.mail.outcome(outcome.events)
    outcome.note = (f"{first.node_name} killed, {second.node_name} stopped {outage:.0f} s; up to {unsent_peak} "
                    f"outbox rows unsent meanwhile")
    return outcome


async def postgres_failover(fs: FaultStack, *, events: int = 500, sign_ins: int = 20) -> Outcome:
    """Kill the primary during sign-ins and a burst of events, promote the standby, no service restart."""
    standby = fs.stack.standby
    assert standby is not None and fs.stack.postgres is not None and fs.mail is not None
    users = await _users(fs)
    outcome = Outcome()
    signed_in: list[Portal] = []
    statuses: list[int] = []
    signing = asyncio.create_task(_sign_ins(fs.stack.base_url, sign_ins, signed_in, statuses))
    # A session committed before the kill is what the scenario must keep: the burst starts once one is in
    # (on a loaded machine the first sign-in could otherwise still be hashing when the primary dies).
    await wait_until(lambda: _async(bool(signed_in)), within=60, interval=0.02)
    writer = asyncio.create_task(_burst(fs, users, events, outcome.events))
    await wait_until(lambda: _async(len(outcome.events) >= events // 3), within=60, interval=0.02)
    await asyncio.to_thread(fs.stack.postgres.kill)
    await standby.promote()
    promoted_at = time.monotonic()
    serving = await wait_until(lambda: asyncio.to_thread(_all_ready, fs), within=60, interval=0.1)
    outcome.recovered_seconds = time.monotonic() - promoted_at if serving else None
    await writer
    await signing
    try:
        outcome.sessions = len(signed_in)
        for portal in signed_in:  # every sign-in that answered 200 committed its session: it must still hold
            status, _ = await portal.get("/api/auth/session")
            outcome.sessions_lost += status != 200
    finally:
        for portal in signed_in:
            await portal.close()
    outcome.all_emails_seconds = await fs.mail.wait_all(outcome.events, within=180)
    await _quiet_period(fs, outcome.events)
    outcome.lost, outcome.duplicates = fs.mail.outcome(outcome.events)
    answers = ", ".join(f"{status or 'no answer'}: {statuses.count(status)}" for status in sorted(set(statuses)))
    outcome.note = f"{outcome.sessions} sign-ins answered 200 around the failover ({answers})"
    return outcome


async def _sign_ins(base_url: str, count: int, out: list[Portal], statuses: list[int]) -> None:
    """`count` sign-ins of the demo user, one after another; the ones that answered 200 land in `out`, and
    every answer's status in `statuses` (0: none)."""
    for _ in range(count):
        portal = Portal(base_url)
        try:
            status, _ = await portal.post("/api/auth/login", {"email": "demo@client.example",
                                                                 "password": DEMO_PASSWORD})
        except Exception:
            status = 0
        statuses.append(status)
        if status == 200:
            out.append(portal)
        else:  # a 503 (or a 401 from the throttle) during the switch: not a committed session
            await portal.close()
        await asyncio.sleep(0.1)


def _all_ready(fs: FaultStack) -> bool:
    stack = fs.stack
    if not all(http_ok(f"http://127.0.0.1:{port}/health/ready") for s in SERVICES for port in stack.service_ports(s)):
        return False
    try:  # and a real read through the gateway
        with urllib.request.urlopen(f"{stack.base_url}/health/profile", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


async def _quiet_period(fs: FaultStack, ids: list[str], seconds: float = 3.0) -> None:
    """Late duplicates (a redelivery after a lost ack) land within this; bounded, polled."""
    assert fs.mail is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if fs.mail.outcome(ids)[1]:
            return  # a duplicate already: no need to wait for more
        await asyncio.sleep(0.25)


async def _async(value: bool) -> bool:
    return value


def figures(name: str, outcome: Outcome, *, recover_goal: float = 10.0) -> list[Figure]:
    took = (f"all emails in {outcome.all_emails_seconds:.1f} s" if outcome.all_emails_seconds is not None
            else "not all emails arrived in time")
    result = [
        Figure(f"{name}: events lost", outcome.lost, "<= 0", note=f"{len(outcome.events)} events; {took}; "
                                                                  f"{outcome.note}"),
        Figure(f"{name}: duplicate emails", outcome.duplicates, "<= 0"),
        Figure(f"{name}: seconds to recover", outcome.recovered_seconds if outcome.recovered_seconds is not None
               else 999, f"<= {recover_goal}", unit="s"),
    ]
    if outcome.sessions:
        result.append(Figure(f"{name}: committed sessions lost", outcome.sessions_lost, "<= 0"))
    return result


async def rabbitmq_node_loss(_: FaultStack | None = None) -> list[Figure]:
    """`make faults` entry: its own HA stack; the leader of the notifier's queue killed mid-burst."""
    async with running_ha_stack() as fs:
        return figures("rabbitmq leader node SIGKILLed during 1,000 events", await broker_leader_kill(fs))


async def postgres_promotion(_: FaultStack | None = None) -> list[Figure]:
    """`make faults` entry: its own HA stack; the primary killed and the standby promoted."""
    async with running_ha_stack() as fs:
        return figures("postgres primary killed, standby promoted, 500 events", await postgres_failover(fs))


async def rabbitmq_quorum_loss(_: FaultStack | None = None) -> list[Figure]:
    """`make faults` entry: its own HA stack; 2 of 3 nodes away for 30 s, then back."""
    async with running_ha_stack() as fs:
        return figures("rabbitmq quorum lost 30 s (1 of 3 nodes left), 500 events", await quorum_loss(fs),
                       recover_goal=30.0)


async def with_replicas(_: FaultStack | None = None) -> list[Figure]:
    """`make faults` entry: its own HA stack with 2 replicas of each service (two relays on each outbox,
    two consumers on each queue): the broker leader killed mid-burst, then the Postgres primary killed
    and the standby promoted. Two replicas race for every row and message: still no duplicate email."""
    async with running_ha_stack(replicas=2) as fs:
        broker_figures = figures("2 replicas each: rabbitmq leader node SIGKILLed during 1,000 events",
                                 await broker_leader_kill(fs))
        return broker_figures + figures("2 replicas each: postgres primary killed, standby promoted, 500 events",
                                        await postgres_failover(fs))
