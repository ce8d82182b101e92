"""The R3 baseline: raw argon2id hashes/s with profile's parameters, in a thread pool of profile's cap.

    python -m bench.http_hash --threads N --seconds S [--warmup W]

argon2-cffi's PasswordHasher with profile_service.passwords.OWASP_PARAMETERS, `N` threads hashing back
to back (N = profile's hash_concurrency); prints one JSON line {"rate": hashes/s, "hashes": n}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import argon2
from profile_service.passwords import OWASP_PARAMETERS


def run(threads: int, seconds: float, warmup: float) -> dict[str, float]:
    hasher = argon2.PasswordHasher(type=argon2.Type.ID, **OWASP_PARAMETERS)
    count = 0
    lock = threading.Lock()
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds

    def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            hasher.hash("correct horse battery staple 42")
            if start_at <= time.perf_counter() <= stop_at:  # completed inside the window
                with lock:
                    count += 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(threads):
            pool.submit(worker)
    return {"rate": count / seconds, "hashes": count}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.threads, args.seconds, args.warmup)), flush=True)
