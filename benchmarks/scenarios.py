"""The benchmark plan: which scenarios run against each fresh server, and their samples.

`Bench` drives loadgen.py (one subprocess per figure, pinned to the generator's core), records
one value per repeat for each figure, re-runs figures that other processes disturbed, and
keeps the correctness counters. run.py owns the command line and the output.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procstat
import report
from report import BARE, LOLO
from servers import RunningServer, ServerError, ServerPool, die_with_parent

HERE = Path(__file__).resolve().parent
ALL = ("S1", "S2", "S3", "S4", "S5", "S6")
NOISY_CORES = 0.15  # other processes using more than this in a window make it a re-run
CORRECTNESS_KEYS = (
    "lost",
    "extra",
    "echoes_seen",
    "format_errors",
    "protocol_errors",
    "json_frames",
)


@dataclass
class Settings:
    repeats: int = 5
    duration: float = 5.0
    warmup: float = 1.0
    s1_clients: list[int] = field(default_factory=lambda: [10, 100, 1000])
    senders: int = 3
    s2_clients: int = 100
    s2_rate: float = 0.0  # messages/s; 0 = half the bare server's measured capacity
    s3_clients: int = 10
    storm_connections: int = 1000
    storm_concurrency: int = 50
    startup_samples: int = 3
    drain_timeout: float = 5.0
    quiet_wait: float = 30.0  # seconds to wait for other load to calm down before each server
    noisy_retries: int = 2  # re-runs of a figure disturbed by other processes
    only: list[str] = field(default_factory=lambda: list(ALL))


QUICK = Settings(
    repeats=1,
    duration=1.0,
    warmup=0.3,
    s1_clients=[10, 50],
    s2_clients=20,
    storm_connections=100,
    startup_samples=1,
    drain_timeout=3.0,
    quiet_wait=0.0,
    noisy_retries=0,
)


class Bench:
    """Runs the plan and collects samples[side][metric] = [one value per repeat]."""

    def __init__(self, settings: Settings, pool: ServerPool, client_cpu: int | None) -> None:
        self.s = settings
        self.pool = pool
        self.client_cpu = client_cpu
        self.samples: report.Samples = {LOLO: {}, BARE: {}}
        self.correctness = {
            side: dict.fromkeys((*CORRECTNESS_KEYS, "failed_connections"), 0)
            for side in (LOLO, BARE)
        }
        self.runs: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.reruns = 0
        self.launched: dict[str, str] = {}  # side -> last command line actually executed

    def add(self, side: str, key: str, value: float | None) -> None:
        if value is not None:
            self.samples[side].setdefault(key, []).append(float(value))

    def loadgen(self, server: RunningServer, args: list[str], budget: float) -> dict[str, Any]:
        argv = [
            sys.executable,
            str(HERE / "loadgen.py"),
            *args,
            "--port",
            str(server.port),
            "--server-pid",
            str(server.pid),
            "--max-seconds",
            str(math.ceil(budget)),
        ]
        if self.client_cpu is not None:
            argv = ["taskset", "-c", str(self.client_cpu), *argv]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=budget + 15,
                preexec_fn=die_with_parent,  # the runner is single-threaded, so this is safe
            )
        except subprocess.TimeoutExpired:
            server.check_alive()
            return {"error": f"loadgen still running after {budget + 15:.0f} s; killed"}
        lines = proc.stdout.strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"error": f"loadgen exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
        server.check_alive()
        return result

    def measure(self, server: RunningServer, args: list[str], what: str) -> dict[str, Any]:
        """Run the generator; re-run (bounded) if other processes disturbed the window."""
        for attempt in range(self.s.noisy_retries + 1):
            result = self.loadgen(server, args, self.budget())
            other = float(result.get("other_cpu_util", 0.0))
            if "error" in result or not other > NOISY_CORES:
                return result
            if attempt < self.s.noisy_retries:
                self.reruns += 1
                self.wait_for_quiet()
        self.warnings.append(f"{what}: other processes used {other:.2f} cores in the window")
        return result

    def record(
        self,
        side: str,
        prefix: str,
        result: dict[str, Any],
        keys: tuple[str, ...],
        pin: dict[str, int | None],
    ) -> bool:
        self.runs.append({"side": side, "figure": prefix, **result})
        if "error" in result:
            self.errors.append(f"{side} {prefix}: {result['error']}")
            return False
        for key in keys:
            self.add(side, f"{prefix}.{key}", result.get(key))
        cores = result.get("core_busy", {})
        for role, cpu in pin.items():
            if cpu is not None and str(cpu) in cores:
                self.add(side, f"{prefix}.{role}_core_busy", cores[str(cpu)])
        for key in CORRECTNESS_KEYS:
            self.correctness[side][key] += int(result.get(key, 0))
        if result.get("overloaded"):
            self.warnings.append(f"{side} {prefix}: server fell >2 s behind the fixed rate")
        return True

    def wait_for_quiet(self) -> None:
        """Let other processes' bursts pass before a server starts or a figure is re-run."""
        if self.s.quiet_wait > 0:
            procstat.wait_for_quiet(self.s.quiet_wait)

    def burst_args(self, clients: int, senders: int) -> list[str]:
        s = self.s
        return [
            "burst",
            "--clients",
            str(clients),
            "--senders",
            str(senders),
            "--warmup",
            str(s.warmup),
            "--duration",
            str(s.duration),
            "--drain-timeout",
            str(s.drain_timeout),
        ]

    def budget(self) -> float:
        return 60 + self.s.warmup + self.s.duration + self.s.drain_timeout

    def calibrate(self, bare_cmd: str, pin: dict[str, int | None]) -> tuple[float, str]:
        """S2's fixed rate: half the bare server's S1 capacity at S2's room size."""
        s = self.s
        if s.s2_rate > 0:
            return s.s2_rate, f"{s.s2_rate:g} msg/s (set with --s2-rate)"
        self.wait_for_quiet()
        server = self.pool.start(BARE, bare_cmd)
        try:
            args = self.burst_args(s.s2_clients, s.senders)
            result = self.measure(server, args, "S2 calibration")
        finally:
            self.pool.stop(server)
        self.runs.append({"side": BARE, "figure": "S2.calibration", **result})
        if "error" in result:
            raise ServerError(f"S2 calibration failed: {result['error']}")
        capacity = float(result["deliveries_per_s"])
        rate = 0.5 * capacity / max(1, s.s2_clients - 1)
        return rate, (
            f"{rate:,.0f} msg/s x {s.s2_clients - 1} receivers = half of the bare "
            f"server's measured {capacity:,.0f} deliveries/s at N={s.s2_clients}"
        )

    def side(self, side: str, command: str, rate: float, pin: dict[str, int | None]) -> None:
        """One repeat for one server: fresh start(s), then every selected scenario."""
        only = set(self.s.only)
        self.wait_for_quiet()
        server: RunningServer | None = None
        for _ in range(self.s.startup_samples if "S6" in only else 1):
            if server is not None:
                self.pool.stop(server)
            server = self.pool.start(side, command)
            self.launched[side] = shlex.join(server.argv)
            if "S6" in only:
                self.add(side, "S6.startup_s", server.startup_s)
        assert server is not None
        time.sleep(0.5)
        if not server.saw_listening_line():
            self.warnings.append(f"{side}: no 'Listening to port {server.port}' on stdout")
        if only & {"S4", "S5"}:
            server = self.storm(side, command, server, pin)
        try:
            self.throughput(side, server, rate, pin)
        finally:
            self.pool.stop(server)

    def storm(
        self, side: str, command: str, server: RunningServer, pin: dict[str, int | None]
    ) -> RunningServer:
        """S5 idle RSS, then the S4 storm and S5 per-connection memory, on a fresh server.

        A disturbed storm is re-run on a new server: a second storm on the same process
        reuses the memory of the first and would report almost 0 KiB per connection.
        """
        s = self.s
        args = ["storm", "--connections", str(s.storm_connections)]
        args += ["--concurrency", str(s.storm_concurrency)]
        for attempt in range(s.noisy_retries + 1):
            if attempt:
                self.reruns += 1
                self.pool.stop(server)
                self.wait_for_quiet()
                server = self.pool.start(side, command)
                time.sleep(0.5)
            idle_mib = procstat.tree_rss_kib(server.pid) / 1024
            result = self.loadgen(server, args, self.budget())
            other = float(result.get("other_cpu_util", 0.0))
            if "error" in result or not other > NOISY_CORES:
                break
        else:
            self.warnings.append(f"{side} S4: other processes used {other:.2f} cores")
        keys: tuple[str, ...] = (
            "conn_per_s",
            "p99_handshake_ms",
            "p50_handshake_ms",
            "p99_hello_ms",
        )
        keys += ("client_cpu_util", "server_cpu_util", "other_cpu_util")
        if self.record(side, "S4", result, keys, pin):
            self.add(side, "S5.idle_rss_mib", idle_mib)
            self.add(side, "S5.kib_per_conn", result["kib_per_conn"])
            self.correctness[side]["failed_connections"] += int(result["failed"])
        return server

    def throughput(
        self, side: str, server: RunningServer, rate: float, pin: dict[str, int | None]
    ) -> None:
        """S1 for each N, S2 at the fixed rate, S3."""
        s, only = self.s, set(self.s.only)
        figures: tuple[str, ...] = ("deliveries_per_s", "cpu_s_per_100k", "client_cpu_util")
        figures += ("server_cpu_util", "other_cpu_util")
        if "S1" in only:
            for n in s.s1_clients:
                result = self.measure(server, self.burst_args(n, s.senders), f"{side} S1.N{n}")
                self.record(side, f"S1.N{n}", result, figures, pin)
        if "S2" in only:
            args = ["rate", "--clients", str(s.s2_clients), "--senders", str(s.senders)]
            args += ["--rate", f"{rate:.3f}", "--warmup", str(s.warmup)]
            args += ["--duration", str(s.duration), "--drain-timeout", str(s.drain_timeout)]
            result = self.measure(server, args, f"{side} S2")
            keys = ("p50_ms", "p99_ms", "p99_sliced_ms", "p99_worst_slice_ms", *figures)
            self.record(side, "S2", result, keys, pin)
        if "S3" in only:
            args = self.burst_args(s.s3_clients, s.s3_clients)
            self.record(side, "S3", self.measure(server, args, f"{side} S3"), figures, pin)
