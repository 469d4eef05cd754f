"""Readers for /proc and getrusage: server CPU and memory, the generator's own CPU, machine facts.

Everything here is Linux-only and read-only. CPU and RSS of a server are summed over the
process and its descendants, so a launcher that forks (a shell, `uv run`, ...) is still counted.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds (user + system) and the wall clock at which they were read."""

    cpu_s: float
    wall_s: float


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if the process is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rfind(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """The root pid plus every live descendant (scans /proc once)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo and len(found) < 10_000:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of the process tree rooted at `root`, in seconds."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            # After the name: state(0) ppid(1) ... utime(11) stime(12).
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def tree_rss_kib(root: int) -> int:
    """Sum of VmRSS (KiB) over the process tree rooted at `root`."""
    total = 0
    for pid in process_tree(root):
        try:
            text = (PROC / str(pid) / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
    return total


def server_cpu(pid: int, wall_s: float) -> CpuSample:
    return CpuSample(tree_cpu_seconds(pid), wall_s)


def self_cpu(wall_s: float) -> CpuSample:
    """This process's own CPU (all threads), for the load generator's headroom figure."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuSample(usage.ru_utime + usage.ru_stime, wall_s)


def utilisation(before: CpuSample, after: CpuSample) -> float:
    """Fraction of one core used between two samples (1.0 = one core saturated)."""
    wall = after.wall_s - before.wall_s
    return (after.cpu_s - before.cpu_s) / wall if wall > 0 else 0.0


def core_busy_seconds() -> dict[int, tuple[float, float]]:
    """Per CPU: (busy seconds, total seconds) since boot, from /proc/stat.

    Busy includes irq/softirq time, which the kernel does not charge to any process; on a
    loopback benchmark that is where much of the network work lands, so a core can be saturated
    while its process shows ~90% CPU. Comparing both figures shows this.
    """
    out: dict[int, tuple[float, float]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *values = line.split()
        ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
        total = sum(ticks)
        out[int(name[3:])] = ((total - ticks[3] - ticks[4]) / CLK_TCK, total / CLK_TCK)
    return out


def machine_task_seconds() -> float:
    """user + nice + system seconds summed over all CPUs (no idle, irq or softirq time)."""
    with open("/proc/stat") as stat:
        values = stat.readline().split()[1:4]
    return sum(int(v) for v in values) / CLK_TCK


def busy_cores(sample_s: float = 0.5) -> float:
    """How many cores' worth of CPU the whole machine used over `sample_s` seconds."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)

    busy0, total0 = read()
    time.sleep(sample_s)
    busy1, total1 = read()
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


def wait_for_quiet(max_wait: float, threshold: float = 0.3) -> float | None:
    """Wait (at most `max_wait` s) until other work uses < `threshold` cores.

    Returns None once quiet, else the last reading. The benchmark's own processes are idle
    while this runs, so anything measured is someone else's load.
    """
    deadline = time.monotonic() + max_wait
    reading = busy_cores()
    while reading >= threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        reading = busy_cores()
    return None if reading < threshold else reading


def core_utilisation(
    before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]]
) -> dict[int, float]:
    """Busy fraction of each core between two core_busy_seconds() readings."""
    result: dict[int, float] = {}
    for cpu, (busy, total) in after.items():
        if cpu in before:
            d_total = total - before[cpu][1]
            result[cpu] = (busy - before[cpu][0]) / d_total if d_total > 0 else 0.0
    return result


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, object]:
    """Facts a reader needs to judge the numbers."""
    try:
        from importlib.metadata import version

        ws_version = version("websockets")
    except ImportError:  # importlib.metadata.PackageNotFoundError is one
        ws_version = "not installed"
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "websockets": ws_version,
        "kernel": platform.release(),
        "taskset": shutil.which("taskset") is not None,
    }
