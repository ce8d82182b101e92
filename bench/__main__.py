"""`make bench`: every benchmark in one run; prints each figure and writes bench/results/bench-<time>.{json,md}.

Throughput figures are ratios against a baseline measured in the same run (these machines are noisy).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path

from bench.report import Figure, write

REPO = Path(__file__).resolve().parent.parent
SUITES = ["bench.bench_relay", "bench.bench_totp", "bench.bench_notifier", "bench.bench_http",
          "bench.bench_signin_totp", "bench.bench_sso",
          "bench.bench_admin_lists", "bench.bench_tracing", "bench.bench_replication", "bench.bench_growth"]


def main() -> None:
    # Benchmarks start helper processes that import bench/ and tests/support: give them the repo root.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    wanted = sys.argv[1:] or SUITES
    figures: list[Figure] = []
    for name in wanted:
        module_name = name if name.startswith("bench.") else f"bench.{name}"
        print(f"\n=== {module_name}", flush=True)
        try:
            module = importlib.import_module(module_name)
            results = asyncio.run(module.run())
        except Exception as exc:  # one broken suite must not hide the others' figures
            print(f"{module_name} failed: {type(exc).__name__}: {exc}", flush=True)
            figures.append(Figure(f"{module_name} ran", 0, ">= 1", note=f"{type(exc).__name__}: {exc}"))
            continue
        for figure in results:
            print(figure.line(), flush=True)
        figures.extend(results)
    path = write("bench", figures)
    print(f"\n{sum(f.passed for f in figures)}/{len(figures)} goals met; results in {path}.json and .md")
    for figure in figures:
        print(figure.line())


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
