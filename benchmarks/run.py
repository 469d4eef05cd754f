"""One command to benchmark lolo-run's chat against a bare `websockets` chat, side by side.

    python benchmarks/run.py                 # full run (several minutes)
    python benchmarks/run.py --quick         # smoke run, well under a minute (CI)
    python benchmarks/run.py --only S1,S3 --repeats 3 --duration 3
    python benchmarks/run.py --quick --lolo-cmd "python benchmarks/bare_server.py"  # bare vs bare

Both servers are started fresh for every repeat and interleaved (lolo, bare, then bare, lolo, ...);
the medians and the ratio lolo-run / bare are written as Markdown, JSON and a PNG chart to
--out (default benchmarks/results/). See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import procstat
import report
from report import BARE, LOLO
from servers import REPO_ROOT, RunningServer, ServerError, ServerPool, die_with_parent

HERE = Path(__file__).resolve().parent
ALL = ("S1", "S2", "S3", "S4", "S5", "S6")
DEFAULT_LOLO = "lolo-run flows/chat.yaml"
# The chat flow rate-limits each client (20 msg/s by default); load tests must lift it.
DEFAULT_ENV = ("CHAT_MAX_MESSAGES_PER_SECOND=1000000000",)
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
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=budget + 15,
            preexec_fn=die_with_parent,  # the runner is single-threaded, so this is safe
        )
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
                self.wait_for_quiet(what)
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

    def wait_for_quiet(self, what: str) -> None:
        if self.s.quiet_wait <= 0:
            return
        busy = procstat.wait_for_quiet(self.s.quiet_wait)
        if busy is not None:
            self.warnings.append(
                f"{what}: started while other processes used {busy:.2f} cores "
                f"(waited {self.s.quiet_wait:g} s for quiet)"
            )

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
        self.wait_for_quiet("S2 calibration")
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
        s, only = self.s, set(self.s.only)
        self.wait_for_quiet(side)
        starts = s.startup_samples if "S6" in only else 1
        server: RunningServer | None = None
        for _ in range(starts):
            if server is not None:
                self.pool.stop(server)
            server = self.pool.start(side, command)
            if "S6" in only:
                self.add(side, "S6.startup_s", server.startup_s)
        assert server is not None
        try:
            time.sleep(0.5)
            if not server.saw_listening_line():
                self.warnings.append(f"{side}: no 'Listening to port {server.port}' on stdout")
            if "S5" in only:
                self.add(side, "S5.idle_rss_mib", procstat.tree_rss_kib(server.pid) / 1024)
            if only & {"S4", "S5"}:
                args = [
                    "storm",
                    "--connections",
                    str(s.storm_connections),
                    "--concurrency",
                    str(s.storm_concurrency),
                ]
                result = self.measure(server, args, f"{side} S4")
                if self.record(
                    side,
                    "S4",
                    result,
                    (
                        "conn_per_s",
                        "p99_handshake_ms",
                        "p50_handshake_ms",
                        "p99_hello_ms",
                        "client_cpu_util",
                        "server_cpu_util",
                        "other_cpu_util",
                    ),
                    pin,
                ):
                    self.add(side, "S5.kib_per_conn", result["kib_per_conn"])
                    self.correctness[side]["failed_connections"] += int(result["failed"])
            figures = (
                "deliveries_per_s",
                "cpu_s_per_100k",
                "client_cpu_util",
                "server_cpu_util",
                "other_cpu_util",
            )
            if "S1" in only:
                for n in s.s1_clients:
                    args = self.burst_args(n, s.senders)
                    result = self.measure(server, args, f"{side} S1.N{n}")
                    self.record(side, f"S1.N{n}", result, figures, pin)
            if "S2" in only:
                args = [
                    "rate",
                    "--clients",
                    str(s.s2_clients),
                    "--senders",
                    str(s.senders),
                    "--rate",
                    f"{rate:.3f}",
                    "--warmup",
                    str(s.warmup),
                    "--duration",
                    str(s.duration),
                    "--drain-timeout",
                    str(s.drain_timeout),
                ]
                result = self.measure(server, args, f"{side} S2")
                self.record(side, "S2", result, ("p50_ms", "p99_ms", *figures), pin)
            if "S3" in only:
                args = self.burst_args(s.s3_clients, s.s3_clients)
                self.record(side, "S3", self.measure(server, args, f"{side} S3"), figures, pin)
        finally:
            self.pool.stop(server)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    p.add_argument("--repeats", type=int, help="interleaved repeats per server")
    p.add_argument("--duration", type=float, help="seconds measured per throughput figure")
    p.add_argument("--only", help="comma-separated scenarios, e.g. S1,S3")
    p.add_argument(
        "--lolo-cmd",
        default=DEFAULT_LOLO,
        help="command for the server under test; without {port} the runner appends "
        "--port P --state DIR/bench.sqlite3 --log-level warning",
    )
    p.add_argument("--bare-cmd", default=f"{shlex.quote(sys.executable)} benchmarks/bare_server.py")
    p.add_argument(
        "--server-env",
        action="append",
        default=list(DEFAULT_ENV),
        metavar="KEY=VALUE",
        help="environment for both servers (repeatable)",
    )
    p.add_argument("--s2-rate", type=float, help="fixed S2 rate in messages/s")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each server start, wait up to this many seconds for other load to "
        "fall below 0.3 cores (default 30; 0 in --quick)",
    )
    p.add_argument(
        "--noisy-retries",
        type=int,
        help=f"re-run a figure up to this many times when other processes used more than "
        f"{NOISY_CORES} cores during its window (default 2; 0 in --quick)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--out", type=Path, default=HERE / "results")
    return p.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    s = Settings(**asdict(QUICK)) if args.quick else Settings()
    if args.repeats is not None:
        s.repeats = max(1, args.repeats)
    if args.duration is not None:
        s.duration = max(0.2, args.duration)
    if args.s2_rate:
        s.s2_rate = args.s2_rate
    if args.noisy_retries is not None:
        s.noisy_retries = max(0, args.noisy_retries)
    if args.quiet_wait is not None:
        s.quiet_wait = max(0.0, args.quiet_wait)
    if args.only:
        s.only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
        unknown = set(s.only) - set(ALL)
        if unknown:
            raise SystemExit(f"--only: unknown scenario(s) {sorted(unknown)}; known: {ALL}")
    return s


def pick_cores(no_pin: bool) -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return cpus[0], cpus[1]


def git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head + (" (dirty)" if dirty.stdout.strip() else "")
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = build_settings(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    procstat.raise_nofile_limit()
    server_cpu, client_cpu = pick_cores(args.no_pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # the runner never competes with the server
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in args.server_env if "=" in kv)
    pin = {"server": server_cpu, "client": client_cpu}
    commands = {LOLO: args.lolo_cmd, BARE: args.bare_cmd}
    started = time.perf_counter()
    with ServerPool(server_cpu, env=env) as pool:
        bench = Bench(settings, pool, client_cpu)
        try:
            rate, rate_note = (
                bench.calibrate(args.bare_cmd, pin)
                if "S2" in settings.only
                else (0.0, "S2 not run")
            )
            for r in range(settings.repeats):
                print(f"repeat {r + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
                # A B, B A, A B, ...: interleaved, and neither always goes first.
                for side in (LOLO, BARE) if r % 2 == 0 else (BARE, LOLO):
                    bench.side(side, commands[side], rate, pin)
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: servers stopped", file=sys.stderr)
            return 130
    return finish(args, settings, bench, commands, rate_note, pin, time.perf_counter() - started)


def finish(
    args: argparse.Namespace,
    settings: Settings,
    bench: Bench,
    commands: dict[str, str],
    rate_note: str,
    pin: dict[str, int | None],
    elapsed: float,
) -> int:
    med = report.medians(bench.samples)
    rows = report.evaluate(report.headline_metrics(settings.s1_clients), med)
    other = [
        v
        for side in med.values()
        for k, v in side.items()
        if k.endswith("other_cpu_util") and v > 0.05
    ]
    if other:
        bench.warnings.append(
            f"other processes used up to {max(other):.2f} cores during "
            "measurement windows: figures may be noisy"
        )
    now = dt.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    pinning = (
        "none"
        if pin["server"] is None
        else f"server on CPU {pin['server']}, load generator on CPU {pin['client']}"
    )
    doc = {
        "generated": now.isoformat(timespec="seconds"),
        "machine": procstat.machine_info(),
        "commit": git_commit(),
        "settings": asdict(settings),
        "commands": commands,
        "server_env": args.server_env,
        "pinning": pinning,
        "order": "lolo-run, bare; then bare, lolo-run; ...",
        "s2_rate_note": rate_note,
        "elapsed_s": round(elapsed, 1),
        "noisy_reruns": bench.reruns,
        "figures": [{k: v for k, v in r.items() if k != "fmt"} for r in rows],
        "medians": med,
        "samples": bench.samples,
        "correctness": bench.correctness,
        "errors": bench.errors,
        "warnings": bench.warnings,
        "runs": bench.runs,
    }
    markdown = report.render_markdown(doc, rows)
    written = report.write_outputs(args.out, stamp, doc, markdown)
    chart = report.write_chart(args.out, stamp, rows)
    print(markdown)
    print(f"wrote {', '.join(str(p) for p in written)}")
    print(f"chart: {chart}" if isinstance(chart, Path) else chart)
    print(f"total {elapsed:.0f} s")
    lost = sum(c["lost"] + c["failed_connections"] for c in bench.correctness.values())
    return 1 if bench.errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
