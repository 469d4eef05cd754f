"""Measurement windows: readings taken at a window's start and end, and the figures from them.

A reading holds the wall clock, deliveries counted, messages sent, this process's CPU
(getrusage), the server's CPU (/proc), per-core busy time and the CPU of all tasks on the
machine, so a window yields throughput, CPU per delivery, each side's utilisation and the
interference from other processes. Latency samples become p50/p99 and per-second p99s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import procstat
from wsclient import Tally


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Window:
    """Readings at the start or end of a measurement window."""

    wall: float
    received: int
    sent: int
    client: procstat.CpuSample
    server: procstat.CpuSample | None
    cores: dict[int, tuple[float, float]]
    machine_tasks: float

    @classmethod
    def take(cls, tally: Tally, sent: int, server_pid: int | None) -> Window:
        wall = time.perf_counter()
        server = procstat.server_cpu(server_pid, wall) if server_pid else None
        cores = procstat.core_busy_seconds()
        tasks = procstat.machine_task_seconds()
        return cls(wall, tally.received, sent, procstat.self_cpu(wall), server, cores, tasks)


def window_figures(a: Window, b: Window) -> dict[str, Any]:
    wall = b.wall - a.wall
    deliveries = b.received - a.received
    out: dict[str, Any] = {
        "window_s": wall,
        "deliveries": deliveries,
        "messages_sent": b.sent - a.sent,
        "deliveries_per_s": deliveries / wall if wall > 0 else 0.0,
        "client_cpu_util": procstat.utilisation(a.client, b.client),
        "core_busy": procstat.core_utilisation(a.cores, b.cores),
    }
    if a.server is not None and b.server is not None:
        cpu = b.server.cpu_s - a.server.cpu_s
        out["server_cpu_s"] = cpu
        out["server_cpu_util"] = procstat.utilisation(a.server, b.server)
        out["cpu_s_per_100k"] = cpu / deliveries * 100_000 if deliveries else math.nan
        out["other_cpu_util"] = other_utilisation(a, b)
    return out


def other_utilisation(a: Window, b: Window) -> float:
    """Cores used by processes other than the server and this generator: interference."""
    if a.server is None or b.server is None or b.wall <= a.wall:
        return math.nan
    ours = b.server.cpu_s - a.server.cpu_s + b.client.cpu_s - a.client.cpu_s
    return max(0.0, (b.machine_tasks - a.machine_tasks - ours) / (b.wall - a.wall))


def latency_figures(tally: Tally) -> dict[str, Any]:
    """p50/p99 over the window, and p99 per 1-second slice (median and worst of the slices).

    A single burst of other work on the machine moves the window's p99; the median of the
    slices' p99 does not, unless the stalls recur every second.
    """
    ms = [s / 1e6 for s in tally.latencies_ns]
    slices: dict[int, list[float]] = {}
    for value, sent in zip(ms, tally.latency_sent_ns, strict=True):
        slices.setdefault((sent - tally.latency_from_ns) // 1_000_000_000, []).append(value)
    per_slice = [percentile(v, 99) for v in slices.values() if len(v) >= 100]
    return {
        "latency_samples": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
        "p99_sliced_ms": percentile(per_slice, 50),
        "p99_worst_slice_ms": max(per_slice) if per_slice else math.nan,
    }
