"""High availability through the whole stack (#16): a 3-node RabbitMQ cluster and a synchronous Postgres
standby under `make up`'s processes, two replicas of each service (two relays per outbox, two consumers
per queue: the duplicate counts below cover their races too), and nginx.

One HA stack for the module; the broker test runs first (it brings its node back), the database failover
last (it cannot be undone). `make faults` runs the same scenarios (bench/faults_ha.py) with more events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bench import faults_ha
from bench.faults_stack import FaultStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
async def ha() -> AsyncIterator[FaultStack]:
    async with faults_ha.running_ha_stack(replicas=2) as fs:
        yield fs


async def test_every_quorum_queue_has_a_member_on_each_of_the_3_nodes(ha: FaultStack) -> None:
    cluster = ha.stack.rabbit_cluster
    assert cluster is not None
    assert ha.stack.env["AMQP_URL"].count("amqp://") == 3
    for service in ("profile", "mfa", "notifier"):
        if not any(q["name"] == f"{service}.events" for q in cluster.nodes[0].management_get("queues/%2F")):  # type: ignore[union-attr]
            continue  # a service that consumes nothing declares no queue
        members = cluster.queue("/", f"{service}.events")["members"]
        assert sorted(members) == sorted(n.node_name for n in cluster.nodes), (service, members)  # type: ignore[arg-type]


async def test_killing_the_queue_leader_mid_burst_loses_and_duplicates_nothing(ha: FaultStack) -> None:
    outcome = await faults_ha.broker_leader_kill(ha, events=300)
    assert outcome.all_emails_seconds is not None, f"not every email arrived ({outcome.lost} missing)"
    assert (outcome.lost, outcome.duplicates) == (0, 0), outcome.note
    # The relay drops its channel on a nack (RabbitMQ 3.10 keeps nacking a confirm channel whose publish met
    # the quorum queue's leader election), so the flow resumes on the surviving nodes.
    assert outcome.recovered_seconds is not None and outcome.recovered_seconds <= 10, outcome.note


async def test_promoting_the_standby_keeps_every_event_and_session_without_a_restart(ha: FaultStack) -> None:
    pids = {c.name: c.process.pid for c in ha.stack.children if c.name.endswith("service")}
    outcome = await faults_ha.postgres_failover(ha, events=200, sign_ins=10)
    assert outcome.recovered_seconds is not None and outcome.recovered_seconds <= 10, outcome
    assert outcome.all_emails_seconds is not None, f"not every email arrived ({outcome.lost} missing)"
    assert (outcome.lost, outcome.duplicates) == (0, 0), outcome.note
    assert outcome.sessions > 0 and outcome.sessions_lost == 0, outcome
    assert len(pids) == 6  # 2 replicas of 3 services
    assert {c.name: c.process.pid for c in ha.stack.children if c.name.endswith("service")} == pids
    assert all(c.running() for c in ha.stack.children if c.name.endswith("service"))
