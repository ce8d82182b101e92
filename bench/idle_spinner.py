"""The flood figure's control: busy loops that only take CPU nothing else wants.

    python -m bench.idle_spinner --threads N --seconds S

N processes spin under SCHED_IDLE (Linux) for S seconds. They run no application code and touch no
memory to speak of, so the GET p99 measured meanwhile shows what any background CPU work, at the
lowest priority the kernel has, costs request latency on this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def spin(seconds: float) -> None:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    workers = [multiprocessing.Process(target=spin, args=(args.seconds,)) for _ in range(args.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
