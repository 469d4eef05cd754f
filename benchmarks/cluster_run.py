"""Cross-process benchmark: the cluster chat with its Redis bus vs the same chat in one process.

    python benchmarks/cluster_run.py                 # full run: 3 interleaved repeats, ~5 min
    python benchmarks/cluster_run.py --quick         # smoke run (CI), under a minute
    python benchmarks/cluster_run.py --only X1 --repeats 5 --rate 400 --duration 30

X1 "cross-process fan-out": K senders (default 3) connect to process A and 100 receivers to
process B, both `lolo-run flows/chat-cluster.yaml --redis URL` on one redis-server; the
senders send timestamped messages open loop at a fixed total rate, so every message crosses
Redis pub/sub to reach the receivers. Baseline ("in-process"): the same clients and rate, all
connected to ONE such process (same flow, same Redis): the only difference is the Redis hop.
Reported: p50/p99 delivery latency at the receivers and their difference (target: p50 within
+2 ms), lolo-run CPU per delivery (all lolo-run processes, /proc utime+stime over the measured
window) bus / in-process (target <= 1.3x), and redis-server's own CPU per delivery.

S3 "small room, high rate" (10 clients, everyone sends, as in benchmarks/run.py): the cluster
chat on SQLite (and on Redis, one process) next to the bare `websockets` chat.

Fresh redis-server and lolo-run processes for every figure, sides interleaved (A B, B A, ...),
medians over repeats. The load runs in a separate process (this file, `load` mode) pinned to
its own core; its CPU is reported next to the servers'. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import procstat
from loadgen import Room, close_all, open_clients
from measure import latency_figures
from paced import new_event_loop
from servers import (
    REDIS_COMMAND,
    RunningServer,
    ServerError,
    ServerPool,
    die_with_parent,
    git_commit,
    pick_cores,
    probe_redis,
)
from wsclient import Tally

HERE = Path(__file__).resolve().parent
DEFAULT_LOLO = "lolo-run flows/chat-cluster.yaml"
NEVER = 1 << 62  # sample_every for clients whose deliveries are counted but never sampled
NOISY_CORES = 0.15

# Sides of each scenario.
BUS, LOCAL, NO_REDIS = "redis-bus", "in-process", "no-redis"
S3_SQLITE, S3_REDIS, S3_BARE = "cluster-sqlite", "cluster-redis", "bare"
X1_SIDES = (BUS, LOCAL)
S3_SIDES = (S3_SQLITE, S3_REDIS, S3_BARE)
ALL = ("X1", "S3")


# =============================================================================== load generator
# Runs in its own process (`cluster_run.py load ...`), pinned to the client core; prints one
# JSON object. CPU of the named server processes is read from /proc at the window's edges.


@dataclass
class Reading:
    wall: float
    received: int
    sent: int
    client: procstat.CpuSample
    pids: dict[str, float]
    cores: dict[int, tuple[float, float]]
    machine_tasks: float

    @classmethod
    def take(cls, tally: Tally, sent: int, pids: dict[str, int]) -> Reading:
        wall = time.perf_counter()
        cpu = {name: procstat.tree_cpu_seconds(pid) for name, pid in pids.items()}
        return cls(
            wall,
            tally.received,
            sent,
            procstat.self_cpu(wall),
            cpu,
            procstat.core_busy_seconds(),
            procstat.machine_task_seconds(),
        )


def reading_figures(a: Reading, b: Reading) -> dict[str, Any]:
    """Throughput, CPU seconds and CPU per 100k deliveries of each named process."""
    wall = b.wall - a.wall
    deliveries = b.received - a.received
    out: dict[str, Any] = {
        "window_s": wall,
        "deliveries": deliveries,
        "messages_in_window": b.sent - a.sent,
        "deliveries_per_s": deliveries / wall if wall > 0 else 0.0,
        "client_cpu_util": procstat.utilisation(a.client, b.client),
        "core_busy": procstat.core_utilisation(a.cores, b.cores),
        "cpu_s": {},
    }
    ours = b.client.cpu_s - a.client.cpu_s
    for name, end in b.pids.items():
        cpu = end - a.pids.get(name, end)
        ours += cpu
        out["cpu_s"][name] = cpu
    out["other_cpu_util"] = max(0.0, (b.machine_tasks - a.machine_tasks - ours) / wall)
    return out


def parse_pids(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, pid = item.partition("=")
        out[name] = int(pid)
    return out


async def load_rate(args: argparse.Namespace) -> dict[str, Any]:
    """X1: senders on one port, receivers on another (or the same); open loop at a fixed rate.

    Only the receivers' deliveries are sampled for latency (every `sample_every`-th, offset per
    client so the samples cover all messages); every delivery of every client is counted.
    """
    tally = Tally()
    timeout = args.connect_timeout
    senders, errors = await open_clients(args.sender_port, args.senders, 50, tally, NEVER, timeout)
    receivers, more = await open_clients(
        args.receiver_port, args.receivers, 50, tally, args.sample_every, timeout
    )
    errors += more
    if errors:
        await close_all(senders + receivers)
        raise RuntimeError(f"{len(errors)} connections failed: {errors[:3]}")
    for i, client in enumerate(receivers):
        client.countdown = 1 + i % args.sample_every
    room = Room(senders + receivers, senders, tally)
    pids = parse_pids(args.pid)
    loop = asyncio.get_running_loop()
    per_tick_cap = max(1, math.ceil(args.rate * 0.05))
    overload_at = max(10_000, int(args.rate * room.fan * 2.0))  # 2 s behind
    started = loop.time()
    measure_at = started + args.warmup
    stop_at = measure_at + args.duration
    start: Reading | None = None
    overloaded = False
    turn = 0
    while (now := loop.time()) < stop_at:
        if start is None and now >= measure_at:
            start = Reading.take(tally, room.sent, pids)
            tally.latency_from_ns = time.monotonic_ns()
        due = min(per_tick_cap, int((now - started) * args.rate) - room.sent)
        for _ in range(max(0, due)):
            room.send(turn)
            turn = (turn + 1) % len(room.senders)
        if room.outstanding() > overload_at:
            overloaded = True
            break
        await asyncio.sleep(0.001)
    tally.latency_to_ns = time.monotonic_ns()
    if start is None:
        start = Reading.take(tally, room.sent, pids)
    end = Reading.take(tally, room.sent, pids)
    await room.drain(args.drain_timeout)
    result = reading_figures(start, end)
    result.update(room.correctness())
    result.update(latency_figures(tally))
    result.update(
        senders=len(senders),
        receivers=len(receivers),
        target_rate=args.rate,
        achieved_rate=result["messages_in_window"] / max(1e-9, result["window_s"]),
        overloaded=overloaded,
        latency_clients="receivers",
    )
    await close_all(room.clients)
    return result


async def load_burst(args: argparse.Namespace) -> dict[str, Any]:
    """S3: every client sends, keeping a bounded window of un-delivered messages (as run.py)."""
    tally = Tally()
    clients, errors = await open_clients(
        args.sender_port, args.senders, 50, tally, args.sample_every, args.connect_timeout
    )
    if errors:
        await close_all(clients)
        raise RuntimeError(f"{len(errors)} connections failed: {errors[:3]}")
    room = Room(clients, clients, tally)
    pids = parse_pids(args.pid)
    window = max(4, math.ceil(max(2000, 20 * len(clients)) / max(1, room.fan)))
    high = window * room.fan
    low = high // 2
    running = True
    turn = 0

    def pump() -> None:
        nonlocal turn
        if not running or room.outstanding() > low:
            return
        while room.outstanding() < high:
            room.send(turn)
            turn = (turn + 1) % len(room.senders)

    tally.on_receive = pump
    pump()
    await asyncio.sleep(args.warmup)
    start = Reading.take(tally, room.sent, pids)
    tally.latency_from_ns = time.monotonic_ns()
    await asyncio.sleep(args.duration)
    tally.latency_to_ns = time.monotonic_ns()
    end = Reading.take(tally, room.sent, pids)
    running = False
    await room.drain(args.drain_timeout)
    result = reading_figures(start, end)
    result.update(room.correctness())
    result.update(clients=len(clients), window_msgs=window)
    await close_all(clients)
    return result


def load_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="cluster_run.py load")
    p.add_argument("mode", choices=("rate", "burst"))
    p.add_argument("--sender-port", type=int, required=True)
    p.add_argument("--receiver-port", type=int, default=0)
    p.add_argument("--senders", type=int, default=3)
    p.add_argument("--receivers", type=int, default=100)
    p.add_argument("--rate", type=float, default=100.0, help="messages/s, all senders together")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--drain-timeout", type=float, default=5.0)
    p.add_argument("--sample-every", type=int, default=1)
    p.add_argument("--connect-timeout", type=float, default=15.0)
    p.add_argument("--pid", action="append", default=[], metavar="NAME=PID")
    p.add_argument("--max-seconds", type=int, default=300)
    args = p.parse_args(argv)
    signal.alarm(max(1, args.max_seconds))  # bounded in time whatever happens
    procstat.raise_nofile_limit()
    # Rate runs measure latency: a plain loop. Burst runs poll every 1 ms (see paced.py).
    interval = 0.0 if args.mode == "rate" else 0.001
    scenario = load_rate if args.mode == "rate" else load_burst
    try:
        with asyncio.Runner(loop_factory=lambda: new_event_loop(interval)) as runner:
            result = runner.run(scenario(args))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    result["mode"] = args.mode
    print(json.dumps(result, allow_nan=True))
    return 0


# =============================================================================== the runner


@dataclass
class Settings:
    repeats: int = 3
    senders: int = 3
    receivers: int = 100
    rate: float = 300.0  # X1 messages/s, all senders together
    warmup: float = 2.0
    duration: float = 20.0  # X1 measured window
    x1_history: int = 0
    x1_no_redis: bool = False  # also run X1 on one process on SQLite (reference, no target)
    s3_clients: int = 10
    s3_warmup: float = 1.0
    s3_duration: float = 5.0
    s3_history: int = 20
    sample_every: int = 1
    drain_timeout: float = 5.0
    quiet_wait: float = 30.0
    only: list[str] = field(default_factory=lambda: list(ALL))


QUICK = Settings(
    repeats=1,
    warmup=0.5,
    duration=3.0,
    s3_warmup=0.3,
    s3_duration=1.0,
    drain_timeout=3.0,
    quiet_wait=0.0,
)


def median(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


class Cluster:
    """Runs the plan; samples[side][metric] = [one value per repeat]."""

    def __init__(
        self,
        s: Settings,
        pool: ServerPool,
        lolo_cmd: str,
        bare_cmd: str,
        base_env: dict[str, str],
        client_cpu: int | None,
    ) -> None:
        self.s = s
        self.pool = pool
        self.lolo_cmd = lolo_cmd
        self.bare_cmd = bare_cmd
        self.base_env = base_env
        self.client_cpu = client_cpu
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.correctness: dict[str, dict[str, int]] = {}
        self.runs: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.launched: dict[str, list[str]] = {}  # "X1 redis-bus: lolo-a" -> argv
        self.current = ""  # the figure and side being run, for `launched`

    # ------------------------------------------------------------------ helpers
    def add(self, side: str, key: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(side, {}).setdefault(key, []).append(float(value))

    def wait_for_quiet(self) -> None:
        if self.s.quiet_wait > 0:
            busy = procstat.wait_for_quiet(self.s.quiet_wait)
            if busy is not None:
                self.warnings.append(
                    f"the machine stayed busy ({busy:.2f} cores) for {self.s.quiet_wait:.0f} s "
                    "before a start; went on anyway"
                )

    def start(
        self, name: str, command: str, env: dict[str, str], probe: Any = None
    ) -> RunningServer:
        self.pool.env = env
        server = (
            self.pool.start(name, command)
            if probe is None
            else self.pool.start(name, command, probe=probe)
        )
        self.launched.setdefault(f"{self.current}: {name}", list(server.argv))
        return server

    def redis(self) -> RunningServer:
        return self.start("redis", REDIS_COMMAND, dict(os.environ), probe=probe_redis)

    def lolo(self, name: str, redis: RunningServer | None, history: int) -> RunningServer:
        env = dict(self.base_env)
        env["CHAT_HISTORY"] = str(history)
        if redis is not None:
            cmd = f"{self.lolo_cmd} --port {{port}} --redis redis://127.0.0.1:{redis.port}/0"
        else:
            cmd = f"{self.lolo_cmd} --port {{port}} --state {{state}}"
        return self.start(name, cmd + " --log-level warning", env)

    def generate(
        self, args: list[str], budget: float, servers: list[RunningServer]
    ) -> dict[str, Any]:
        argv = [sys.executable, str(Path(__file__).resolve()), "load", *args]
        argv += ["--max-seconds", str(math.ceil(budget))]
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
            lines = proc.stdout.strip().splitlines()
            try:
                result: dict[str, Any] = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                result = {"error": f"load exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
        except subprocess.TimeoutExpired:
            result = {"error": f"load generator still running after {budget + 15:.0f} s; killed"}
        for server in servers:
            server.check_alive()
        return result

    def record(self, side: str, figure: str, result: dict[str, Any], roles: dict[str, str]) -> None:
        """Per-repeat figures; `roles` maps pid names to their group (lolo / redis / bare)."""
        self.runs.append({"side": side, "figure": figure, **result})
        if "error" in result:
            self.errors.append(f"{figure} {side}: {result['error']}")
            return
        pre = f"{figure}."
        deliveries = result["deliveries"]
        groups: dict[str, float] = {}
        for name, cpu in result["cpu_s"].items():
            groups[roles[name]] = groups.get(roles[name], 0.0) + cpu
            self.add(side, f"{pre}pid.{name}.cpu_util", cpu / result["window_s"])
        for group, cpu in groups.items():
            self.add(
                side,
                f"{pre}{group}.cpu_s_per_100k",
                cpu / deliveries * 1e5 if deliveries else math.nan,
            )
            self.add(side, f"{pre}{group}.cpu_util", cpu / result["window_s"])
        if "redis" in groups and "lolo" in groups:
            total = groups["redis"] + groups["lolo"]
            self.add(
                side,
                f"{pre}all.cpu_s_per_100k",
                total / deliveries * 1e5 if deliveries else math.nan,
            )
        for key in ("deliveries_per_s", "client_cpu_util", "other_cpu_util", "achieved_rate"):
            self.add(side, pre + key, result.get(key))
        for key in ("p50_ms", "p99_ms", "p99_sliced_ms", "max_ms"):
            if key in result:
                self.add(side, pre + key, result[key])
        cores = result.get("core_busy", {})
        for role, cpu in (("server_core", self.pool.pin_cpu), ("client_core", self.client_cpu)):
            if cpu is not None and str(cpu) in cores:
                self.add(side, f"{pre}{role}_busy", cores[str(cpu)])
        counts = self.correctness.setdefault(f"{figure} {side}", {})
        for key in (
            "lost",
            "extra",
            "echoes_seen",
            "format_errors",
            "protocol_errors",
            "json_frames",
        ):
            counts[key] = counts.get(key, 0) + int(result.get(key, 0))
        if result.get("overloaded"):
            self.warnings.append(f"{figure} {side}: fell more than 2 s behind the fixed rate")
        if result.get("other_cpu_util", 0.0) > NOISY_CORES:
            self.warnings.append(
                f"{figure} {side}: other processes used {result['other_cpu_util']:.2f} cores "
                "in the window (noisy)"
            )

    # ------------------------------------------------------------------ X1
    def x1(self, side: str) -> None:
        s = self.s
        self.current = f"X1 {side}"
        self.wait_for_quiet()
        redis = None if side == NO_REDIS else self.redis()
        servers = [] if redis is None else [redis]
        try:
            a = self.lolo("lolo-a" if side == BUS else "lolo", redis, s.x1_history)
            servers.append(a)
            b = a
            if side == BUS:
                b = self.lolo("lolo-b", redis, s.x1_history)
                servers.append(b)
            time.sleep(0.3)
            args = ["rate", "--sender-port", str(a.port), "--receiver-port", str(b.port)]
            args += ["--senders", str(s.senders), "--receivers", str(s.receivers)]
            args += ["--rate", str(s.rate), "--warmup", str(s.warmup)]
            args += ["--duration", str(s.duration), "--drain-timeout", str(s.drain_timeout)]
            args += ["--sample-every", str(s.sample_every)]
            roles = {"redis": "redis"}
            for srv in servers:
                args += ["--pid", f"{srv.name}={srv.pid}"]
                roles[srv.name] = "redis" if srv is redis else "lolo"
            budget = 60 + s.warmup + s.duration + s.drain_timeout
            self.record(side, "X1", self.generate(args, budget, servers), roles)
        finally:
            for srv in reversed(servers):
                self.pool.stop(srv)

    # ------------------------------------------------------------------ S3
    def s3(self, side: str) -> None:
        s = self.s
        self.current = f"S3 {side}"
        self.wait_for_quiet()
        servers: list[RunningServer] = []
        roles: dict[str, str] = {}
        try:
            if side == S3_BARE:
                target = self.start("bare", self.bare_cmd, dict(self.base_env))
                servers.append(target)
                roles["bare"] = "lolo"  # the server under test, whatever it is
            else:
                redis = None
                if side == S3_REDIS:
                    redis = self.redis()
                    servers.append(redis)
                    roles["redis"] = "redis"
                target = self.lolo("lolo", redis, s.s3_history)
                servers.append(target)
                roles["lolo"] = "lolo"
            time.sleep(0.3)
            args = ["burst", "--sender-port", str(target.port), "--senders", str(s.s3_clients)]
            args += ["--warmup", str(s.s3_warmup), "--duration", str(s.s3_duration)]
            args += ["--drain-timeout", str(s.drain_timeout), "--sample-every", "64"]
            for srv in servers:
                args += ["--pid", f"{srv.name}={srv.pid}"]
            budget = 60 + s.s3_warmup + s.s3_duration + s.drain_timeout
            self.record(side, "S3", self.generate(args, budget, servers), roles)
        finally:
            for srv in reversed(servers):
                self.pool.stop(srv)

    def run(self) -> None:
        for r in range(self.s.repeats):
            print(f"repeat {r + 1}/{self.s.repeats} ...", file=sys.stderr, flush=True)
            if "X1" in self.s.only:
                sides = (*X1_SIDES, NO_REDIS) if self.s.x1_no_redis else X1_SIDES
                for side in sides if r % 2 == 0 else sides[::-1]:
                    print(f"  X1 {side}", file=sys.stderr, flush=True)
                    self.x1(side)
            if "S3" in self.s.only:
                order = S3_SIDES if r % 2 == 0 else S3_SIDES[::-1]
                for side in order:
                    print(f"  S3 {side}", file=sys.stderr, flush=True)
                    self.s3(side)


# =============================================================================== report


def _f(value: float | None, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.0f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def x1_figures(med: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The X1 headline rows: value per side, the comparison, the target and whether it is met."""
    bus, loc, ref = med.get(BUS, {}), med.get(LOCAL, {}), med.get(NO_REDIS, {})
    rows = []

    def row(
        key: str,
        label: str,
        digits: int,
        compare: str,
        target: str = "",
        limit: float | None = None,
    ) -> None:
        a, b = bus.get(f"X1.{key}", math.nan), loc.get(f"X1.{key}", math.nan)
        if compare == "diff":
            value = a - b
            shown = "n/a" if math.isnan(value) else f"{value:+.2f} ms"
        else:
            value = ratio(a, b)
            shown = "n/a" if math.isnan(value) else f"{value:.2f}x"
        met = None if limit is None or math.isnan(value) else value <= limit
        rows.append(
            {
                "key": key,
                "label": label,
                BUS: a,
                LOCAL: b,
                NO_REDIS: ref.get(f"X1.{key}", math.nan),
                "compare": compare,
                "value": value,
                "shown": shown,
                "target": target,
                "met": met,
                "digits": digits,
            }
        )

    row("p50_ms", "p50 delivery latency (ms)", 2, "diff", "<= +2 ms", 2.0)
    row("p99_ms", "p99 delivery latency (ms)", 2, "diff")
    row("p99_sliced_ms", "p99, median of 1 s slices (ms)", 2, "diff")
    row(
        "lolo.cpu_s_per_100k",
        "lolo-run CPU s / 100k deliveries (all processes)",
        3,
        "ratio",
        "<= 1.3x",
        1.3,
    )
    row("redis.cpu_s_per_100k", "redis-server CPU s / 100k deliveries", 3, "ratio")
    row("all.cpu_s_per_100k", "lolo-run + redis-server CPU s / 100k deliveries", 3, "ratio")
    row("deliveries_per_s", "deliveries/s (fixed rate)", 0, "ratio")
    return rows


def s3_figures(med: dict[str, dict[str, float]]) -> list[list[str]]:
    bare = med.get(S3_BARE, {})
    rows = []
    for side in S3_SIDES:
        m = med.get(side)
        if not m:
            continue
        dps = m.get("S3.deliveries_per_s", math.nan)
        cpu = m.get("S3.lolo.cpu_s_per_100k", math.nan)
        rows.append(
            [
                side,
                _f(dps, 0),
                _f(ratio(dps, bare.get("S3.deliveries_per_s", math.nan)), 2),
                _f(cpu, 3),
                _f(ratio(cpu, bare.get("S3.lolo.cpu_s_per_100k", math.nan)), 2),
                _f(m.get("S3.redis.cpu_s_per_100k"), 3),
            ]
        )
    return rows


def headroom(med: dict[str, dict[str, float]]) -> list[list[str]]:
    rows = []
    for side, m in med.items():
        for fig in ("X1", "S3"):
            if f"{fig}.client_cpu_util" not in m:
                continue
            per_proc = ", ".join(
                f"{k.split('.')[2]} {_pct(v)}"
                for k, v in sorted(m.items())
                if k.startswith(f"{fig}.pid.") and k.endswith(".cpu_util")
            )
            rows.append(
                [
                    fig,
                    side,
                    per_proc,
                    _pct(m.get(f"{fig}.server_core_busy")),
                    _pct(m.get(f"{fig}.client_cpu_util")),
                    _pct(m.get(f"{fig}.client_core_busy")),
                    _pct(m.get(f"{fig}.other_cpu_util")),
                ]
            )
    return rows


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    s = doc["settings"]
    med = doc["medians"]
    parts = [
        f"# Cluster chat benchmark: Redis bus vs one process ({doc['generated']})",
        "",
        f"Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs, Linux {m['kernel']}, "
        f"Python {m['python']}, redis-server {doc['redis_version']}. Pinning: {doc['pinning']}. "
        f"Repeats: {s['repeats']} (sides interleaved, fresh processes for every figure), "
        f"medians shown. Commit: {doc['commit']}. Took {doc['elapsed_s']:.0f} s.",
        "",
    ]
    if "X1" in s["only"]:
        fan = s["receivers"] + s["senders"] - 1
        parts += [
            "## X1: cross-process fan-out",
            "",
            f"{s['senders']} senders on process A, {s['receivers']} receivers on process B "
            f"(`{BUS}`), against the same clients all on one process (`{LOCAL}`); both "
            f"`{doc['lolo_cmd']} --redis URL` on one fresh redis-server. Open loop at "
            f"{s['rate']:g} messages/s in total ({s['rate'] * fan:,.0f} deliveries/s: each "
            f"message reaches {s['receivers']} receivers and the {s['senders'] - 1} other "
            f"senders), {s['warmup']:g} s warm-up, {s['duration']:g} s measured. "
            f"CHAT_HISTORY={s['x1_history']}"
            + (
                " (no history: the bus is the only difference)"
                if s["x1_history"] == 0
                else " (each message also costs an incr + a bounded push on Redis, both sides)"
            )
            + ". Latency: every "
            + ("" if s["sample_every"] == 1 else f"{s['sample_every']}th ")
            + "delivery to a receiver, send stamp to receipt (one host, CLOCK_MONOTONIC). "
            "CPU per delivery: utime + stime of the processes (/proc) over the window / all "
            "deliveries in it (receivers' and senders').",
            "",
        ]
        table = []
        with_ref = NO_REDIS in med
        for r in x1_figures(med):
            met = {None: "", True: "yes", False: "**no**"}[r["met"]]
            row = [r["label"], _f(r[BUS], r["digits"]), _f(r[LOCAL], r["digits"])]
            row += [_f(r[NO_REDIS], r["digits"])] if with_ref else []
            table.append([*row, r["shown"], r["target"], met])
        header = ["figure", BUS, LOCAL, *([NO_REDIS] if with_ref else [])]
        parts.append(_table([*header, "bus vs in-process", "target", "met"], table))
        parts.append("")
        if with_ref:
            parts += [
                f"`{NO_REDIS}` (reference, no target): the same clients on one process with "
                "`--state FILE` instead of `--redis URL`, so no bus at all: what publishing "
                "to Redis and reading back (and dropping) its own echo costs the in-process "
                "side.",
                "",
            ]
        bus, loc = med.get(BUS, {}), med.get(LOCAL, {})
        a, b = bus.get("X1.pid.lolo-a.cpu_util"), bus.get("X1.pid.lolo-b.cpu_util")
        if a is not None and b is not None:
            parts += [
                f"Redis bus: process A (senders) used {_pct(a)} of a core, process B "
                f"(receivers) {_pct(b)}, redis-server {_pct(bus.get('X1.redis.cpu_util'))}. "
                f"In-process: lolo-run {_pct(loc.get('X1.lolo.cpu_util'))}, redis-server "
                f"{_pct(loc.get('X1.redis.cpu_util'))}. The clients (one separate process) "
                f"used {_pct(bus.get('X1.client_cpu_util'))} and "
                f"{_pct(loc.get('X1.client_cpu_util'))} of their core.",
                "",
            ]
    if "S3" in s["only"]:
        parts += [
            "## S3: small room, high rate (cluster chat on one process)",
            "",
            f"{s['s3_clients']} clients, every one sends, bounded window of un-delivered "
            f"messages (as benchmarks/run.py S3); {s['s3_warmup']:g} s warm-up, "
            f"{s['s3_duration']:g} s measured. `{S3_SQLITE}`: `{doc['lolo_cmd']} --state FILE`; "
            f"`{S3_REDIS}`: `--redis URL` instead; both CHAT_HISTORY={s['s3_history']}. "
            f"`{S3_BARE}`: `{doc['bare_cmd']}` (keeps no history).",
            "",
            _table(
                [
                    "server",
                    "deliveries/s",
                    "vs bare",
                    "server CPU s / 100k deliv.",
                    "vs bare",
                    "redis CPU s / 100k",
                ],
                s3_figures(med),
            ),
            "",
        ]
    parts += [
        "## Load generator headroom (medians; 100% = one core)",
        "",
        "The clients run in one separate process pinned to their own core. `server core busy` "
        "is the core all servers (lolo-run, redis-server) share, counting irq/softirq time; "
        "`other` is CPU used by processes outside the benchmark during the window.",
        "",
        _table(
            [
                "figure",
                "side",
                "server processes' CPU",
                "server core busy",
                "client CPU",
                "client core busy",
                "other",
            ],
            headroom(med),
        ),
        "",
        "## Correctness (summed over repeats)",
        "",
    ]
    if doc["correctness"]:
        keys = list(next(iter(doc["correctness"].values())).keys())
        parts.append(
            _table(
                ["run", *keys],
                [[name, *(str(v[k]) for k in keys)] for name, v in doc["correctness"].items()],
            )
        )
    parts += ["", "Commands (ports and folders vary per start):", ""]
    parts += [f"- {name}: `{shlex.join(argv)}`" for name, argv in doc["launched"].items()]
    if doc["errors"]:
        parts += ["", "## Errors", ""] + [f"- {e}" for e in doc["errors"]]
    if doc["warnings"]:
        parts += ["", "## Warnings", ""] + [f"- {w}" for w in doc["warnings"]]
    parts.append("")
    return "\n".join(parts)


# =============================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("--quick", action="store_true", help="smoke run (CI): 1 repeat, short windows")
    p.add_argument("--repeats", type=int, help="interleaved repeats (default 3)")
    p.add_argument("--only", help="comma-separated: X1,S3")
    p.add_argument("--rate", type=float, help="X1 messages/s, all senders (default 300)")
    p.add_argument("--senders", type=int, help="X1 senders (default 3)")
    p.add_argument("--receivers", type=int, help="X1 receivers (default 100)")
    p.add_argument("--duration", type=float, help="X1 measured seconds (default 20)")
    p.add_argument("--warmup", type=float, help="X1 warm-up seconds (default 2)")
    p.add_argument("--x1-history", type=int, help="CHAT_HISTORY for X1 (default 0)")
    p.add_argument(
        "--x1-no-redis",
        action="store_true",
        default=None,
        help="X1 also on one process without Redis (--state): a reference column",
    )
    p.add_argument("--s3-duration", type=float, help="S3 measured seconds (default 5)")
    p.add_argument("--s3-history", type=int, help="CHAT_HISTORY for S3 (default 20, as shipped)")
    p.add_argument("--sample-every", type=int, help="X1: sample every Nth delivery (default 1)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each start wait up to S s for other load < 0.3 cores "
        "(default 30; 0 with --quick)",
    )
    p.add_argument(
        "--lolo-cmd",
        default=DEFAULT_LOLO,
        help="program + flow; the runner appends --port, --redis/--state, --log-level",
    )
    p.add_argument("--bare-cmd", default=f"{shlex.quote(sys.executable)} benchmarks/bare_server.py")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the lolo-run servers (repeatable)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="folder for cluster-<time>.{md,json} and cluster-latest.{md,json}",
    )
    return p.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    s = Settings(**asdict(QUICK)) if args.quick else Settings()
    for name in (
        "repeats",
        "rate",
        "senders",
        "receivers",
        "duration",
        "warmup",
        "x1_history",
        "x1_no_redis",
        "s3_duration",
        "s3_history",
        "sample_every",
        "quiet_wait",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    s.repeats = max(1, s.repeats)
    s.senders = max(1, s.senders)
    s.sample_every = max(1, s.sample_every)
    if args.only:
        s.only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
        unknown = set(s.only) - set(ALL)
        if unknown:
            raise SystemExit(f"--only: unknown {sorted(unknown)}; known: {list(ALL)}")
    return s


def redis_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=5
        ).stdout
        for part in out.split():
            if part.startswith("v="):
                return part[2:]
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    args = parse_args(argv)
    s = build_settings(args)
    if shutil.which("redis-server") is None:
        print(
            "error: redis-server is not installed (Debian package: redis-server)", file=sys.stderr
        )
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    procstat.raise_nofile_limit()
    server_cpu, client_cpu = pick_cores(args.no_pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # the runner never competes with the servers
    env = dict(os.environ)
    env["CHAT_MAX_MESSAGES_PER_SECOND"] = "1000000000"  # the limiter runs but never trips
    env.update(kv.split("=", 1) for kv in args.server_env if "=" in kv)
    started = time.perf_counter()
    status = 0
    with ServerPool(server_cpu, env=env) as pool:
        bench = Cluster(s, pool, args.lolo_cmd, args.bare_cmd, env, client_cpu)
        try:
            bench.run()
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bench.errors.append(str(exc).splitlines()[0])
            status = 2
        except KeyboardInterrupt:
            print("interrupted: servers stopped", file=sys.stderr)
            return 130
    elapsed = time.perf_counter() - started
    now = dt.datetime.now()
    med = {
        side: {k: median(v) for k, v in metrics.items()} for side, metrics in bench.samples.items()
    }
    doc = {
        "generated": now.isoformat(timespec="seconds"),
        "machine": procstat.machine_info(),
        "redis_version": redis_version(),
        "commit": git_commit(),
        "settings": asdict(s),
        "lolo_cmd": args.lolo_cmd,
        "bare_cmd": args.bare_cmd,
        "server_env": ["CHAT_MAX_MESSAGES_PER_SECOND=1000000000", *args.server_env],
        "pinning": "none"
        if server_cpu is None
        else f"servers (lolo-run, redis-server) on CPU {server_cpu}, clients on CPU {client_cpu}",
        "elapsed_s": round(elapsed, 1),
        "x1": [{k: v for k, v in r.items() if k != "digits"} for r in x1_figures(med)]
        if "X1" in s.only
        else [],
        "medians": med,
        "samples": bench.samples,
        "correctness": bench.correctness,
        "launched": bench.launched,
        "errors": bench.errors,
        "warnings": bench.warnings,
        "runs": bench.runs,
    }
    markdown = render(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    text = json.dumps(doc, indent=2, default=str, allow_nan=True)
    written = []
    for name in (f"cluster-{stamp}", "cluster-latest"):
        for ext, body in (("md", markdown), ("json", text)):
            path = args.out / f"{name}.{ext}"
            path.write_text(body)
            written.append(str(path))
    print(markdown)
    print(f"wrote {', '.join(written)}")
    print(f"total {elapsed:.0f} s")
    lost = sum(c.get("lost", 0) + c.get("extra", 0) for c in bench.correctness.values())
    if status:
        return status
    return 1 if bench.errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
