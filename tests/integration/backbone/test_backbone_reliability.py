"""The backbone's promises under failure: a broker restart mid-burst and a consumer killed mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.backbone.backbone_support import Backbone, wait_until
from tests.support.backends import Backend

CONSUMER_SCRIPT = Path(__file__).with_name("consumer_process.py")


async def _count_at_least(backbone: Backbone, count: int) -> bool:
    return (await backbone.effects())[1] >= count


async def _unsent(backbone: Backbone) -> int:
    return await backbone.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


@pytest.mark.slow
async def test_broker_restart_during_a_burst_of_1000_events_loses_and_doubles_nothing(
        backbone: Backbone, backend: Backend) -> None:
    await backbone.start_consumer(prefetch=32)
    backbone.start_relay(poll_seconds=0.2, max_backoff_seconds=1.0)
    writer = asyncio.create_task(backbone.write_many(1000, per_transaction=2))

    async def written(count: int) -> bool:
        return await backbone.pool.fetchval("SELECT count(*) FROM outbox") >= count

    await wait_until(lambda: written(150), within=20, what="the burst to start")
    await asyncio.to_thread(backend.stop_broker)
    # Events keep being written (and committed) while the broker is away.
    await wait_until(lambda: written(500), within=20, what="writes during the outage")
    unsent_during_outage = await _unsent(backbone)
    await asyncio.to_thread(backend.start_broker)
    await writer
    assert unsent_during_outage > 0  # the outage really caught rows in flight

    await wait_until(lambda: _count_at_least(backbone, 1000), within=45, what="all 1,000 effects")
    await backbone.settled()  # a late duplicate would have landed before the sentinel
    assert await backbone.effects() == (1001, 1001)
    assert await backbone.pool.fetchval("SELECT count(*) FROM inbox") == 1001
    await wait_until(lambda: _no_unsent(backbone), within=10, what="every row marked sent")


async def _no_unsent(backbone: Backbone) -> bool:
    return await _unsent(backbone) == 0


async def _start_consumer_process(backbone: Backbone) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": backbone.dsn, "AMQP_URL": backbone.amqp_url, "HANDLER_DELAY": "0.01",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    process = await asyncio.create_subprocess_exec(sys.executable, str(CONSUMER_SCRIPT), env=env,
                                                   stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.strip() == b"consuming", line
    return process


@pytest.mark.slow
async def test_consumer_killed_mid_stream_gives_every_event_exactly_one_effect(backbone: Backbone) -> None:
    total = 600
    consumer = await backbone.start_consumer()  # declares the queue and bindings, then steps aside
    await consumer.stop()
    await backbone.write_many(total, per_transaction=50)
    backbone.start_relay(poll_seconds=0.1)

    first = await _start_consumer_process(backbone)
    try:
        await wait_until(lambda: _count_at_least(backbone, 150), within=30, what="the stream to flow")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    done_at_kill = (await backbone.effects())[1]
    assert done_at_kill < total, "the consumer finished before it could be killed"

    second = await _start_consumer_process(backbone)
    try:
        await wait_until(lambda: _count_at_least(backbone, total), within=40, what="every event after the restart")
        await backbone.settled()  # redeliveries of the killed process's messages come before the sentinel
        assert await backbone.effects() == (total + 1, total + 1)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(second.wait(), 15)
        except TimeoutError:
            second.kill()
            await second.wait()
    assert second.returncode == 0
