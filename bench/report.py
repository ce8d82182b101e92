"""Benchmark results: one line per figure, written as JSON and a Markdown table with the machine and commit."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Figure:
    name: str
    measured: float
    goal: str  # e.g. ">= 0.7", "<= 250"
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        op, _, target = self.goal.partition(" ")
        value = float(target.replace(",", ""))
        return self.measured >= value if op == ">=" else self.measured <= value

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        return f"{self.name}: {self.measured:,.3g} {self.unit} ({self.goal}) {status}".replace("  ", " ")


def spread(samples: list[float]) -> str:
    if len(samples) < 2:
        return ""
    return f"median of {len(samples)} rounds, min {min(samples):,.3g}, max {max(samples):,.3g}"


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> dict[str, str | int]:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count() or 0, "processor": platform.processor() or platform.machine()}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(kind: str, figures: list[Figure]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    info = {"kind": kind, "at": stamp, "commit": commit(), "machine": machine()}
    base = RESULTS / f"{kind}-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(
        {**info, "figures": [{**asdict(f), "passed": f.passed} for f in figures]}, indent=2))
    rows = "\n".join(f"| {f.name} | {f.measured:,.4g} {f.unit} | {f.goal} | {'PASS' if f.passed else 'FAIL'} "
                     f"| {f.note} |" for f in figures)
    base.with_suffix(".md").write_text(
        f"# {kind} {stamp}\n\ncommit {info['commit']} on {info['machine']}\n\n"
        f"| figure | measured | goal | result | note |\n|---|---|---|---|---|\n{rows}\n")
    return base
