"""The doorbell of the relay's and the dispatcher's workers: one ring wakes one worker, none is lost."""

from __future__ import annotations

import asyncio

from portal_shared.doorbell import Doorbell


async def test_doorbell_wakes_one_idle_worker_per_ring_and_keeps_an_unheard_ring() -> None:
    bell = Doorbell()
    woken: list[int] = []

    async def worker(n: int) -> None:
        await bell.wait(5)
        woken.append(n)

    workers = [asyncio.create_task(worker(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    bell.ring()
    await asyncio.sleep(0.01)
    assert woken == [0]  # one committed job, one worker, no empty claims by the others
    bell.ring_all()  # stopping
    await asyncio.gather(*workers)
    assert sorted(woken) == [0, 1, 2]

    bell = Doorbell()
    bell.ring()  # nobody waits: the next worker to go idle claims again at once
    started = asyncio.get_running_loop().time()
    await bell.wait(5)
    assert asyncio.get_running_loop().time() - started < 1
    started = asyncio.get_running_loop().time()
    await bell.wait(0.05)  # the ring was used up: this one waits for the poll
    assert asyncio.get_running_loop().time() - started >= 0.04
