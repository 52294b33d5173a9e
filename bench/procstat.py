"""Where the CPU goes during a bench run: per process group, ours and the rest.

"Ours" are the processes this one started, Ray's included (the driver starts GCS and
the raylet, which starts every worker); the machine's busy time beyond them is other
work on a shared machine, which skews timings and so is printed beside them.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _group(title: str, pid: int) -> str:
    if pid == os.getpid():
        return "client"
    name = title.removeprefix("ray::").split(".")[0].split(" ")[0]
    for prefix, group in (
        ("RayPlanner", "planner"),
        ("ServeReplica", "ingress"),
        ("RayAgentActor", "agents"),
        ("RayRegistryService", "registry"),
        ("RayHistoryHost", "history"),
        ("RegistryService", "registry"),
    ):
        if name.startswith(prefix):
            return group
    return "serve+ray"  # proxy, controller, HAProxy, raylet, GCS, ...


def cpu_snapshot() -> tuple[dict[int, tuple[str, float]], float]:
    """CPU seconds of each process this one started (Ray's included), and of the machine."""
    rows: dict[int, tuple[str, int, float]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        rows[int(proc.name)] = (title, int(stat[1]), (int(stat[11]) + int(stat[12])) / _TICK)
    me, mine = os.getpid(), {}
    for pid, (title, _, seconds) in rows.items():
        ancestor, hops = pid, 0
        while ancestor not in (me, 0) and ancestor in rows and hops < 32:
            ancestor, hops = rows[ancestor][1], hops + 1
        if ancestor == me:
            mine[pid] = (title, seconds)
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    busy = (sum(fields) - fields[3] - fields[4]) / _TICK  # all but idle and iowait
    return mine, busy


def cpu_delta(
    before: tuple[dict[int, tuple[str, float]], float],
    after: tuple[dict[int, tuple[str, float]], float],
) -> Counter[str]:
    out: Counter[str] = Counter()
    for pid, (title, seconds) in after[0].items():
        out[_group(title, pid)] += seconds - before[0].get(pid, (title, 0.0))[1]
    out["not ours"] = max(0.0, after[1] - before[1] - sum(out.values()))
    return out


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all cores busy over `seconds`: other work on the machine skews the run."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)
