"""CPU seconds (user + system, from /proc) of the processes in a benchmark, grouped by role, so a
figure can say where each email's CPU went on this small machine. Linux only; empty elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(roots: set[int], stats: dict[int, tuple[int, float]]) -> set[int]:
    found, grew = set(roots), True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def snapshot(groups: dict[str, set[int]], markers: dict[str, str] | None = None) -> dict[str, float]:
    """CPU seconds so far of each group: `groups` {name: pids}, the processes themselves; `markers` {name:
    a string in the command line of its processes (e.g. a server's data directory)}, with their descendants
    (a server's worker processes)."""
    stats = {int(p.name): s for p in Path("/proc").glob("[0-9]*") if (s := _stat(int(p.name))) is not None}
    groups = {name: {p for p in pids if p in stats} for name, pids in groups.items()}
    for name, marker in (markers or {}).items():
        groups[name] = _descendants({pid for pid in stats if marker in _cmdline(pid)}, stats)
    return {name: sum(stats[p][1] for p in pids) for name, pids in groups.items()}


def per_item_ms(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    return {name: round((after[name] - before.get(name, 0.0)) * 1000 / items, 3) for name in after}
