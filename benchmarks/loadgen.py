"""Load generator for the chat benchmark: one scenario per run, one JSON object on stdout.

    python benchmarks/loadgen.py burst --port 8765 --clients 100 --senders 3 --duration 5
    python benchmarks/loadgen.py rate  --port 8765 --clients 100 --senders 3 --rate 500
    python benchmarks/loadgen.py storm --port 8765 --connections 1000 --concurrency 50

Everything runs callback-driven on one asyncio loop (see wsclient.py). With --server-pid the
server's CPU seconds and RSS are read from /proc over exactly the measurement window; the
generator's own CPU is read with getrusage over the same window, so a reader can see whether
the generator, rather than the server, was the limit. The target is always 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import procstat
from measure import Window, latency_figures, other_utilisation, percentile, window_figures
from paced import new_event_loop
from wsclient import LeanClient, Tally, connect


@dataclass
class Room:
    """Connected clients plus the bookkeeping to check every delivery arrived."""

    clients: list[LeanClient]
    senders: list[LeanClient]
    tally: Tally
    sent_by: list[int] = field(default_factory=list)
    sent: int = 0
    payload_pad: bytes = b""

    def __post_init__(self) -> None:
        self.sent_by = [0] * len(self.senders)

    @property
    def fan(self) -> int:
        return len(self.clients) - 1

    def send(self, index: int) -> None:
        stamp = b"%d %d" % (time.monotonic_ns(), self.sent)
        self.senders[index].send_text(stamp + self.payload_pad)
        self.sent_by[index] += 1
        self.sent += 1

    def outstanding(self) -> int:
        return self.sent * self.fan - self.tally.received

    async def drain(self, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while self.outstanding() > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)

    def correctness(self) -> dict[str, int]:
        """Every client must get each message sent by the others, and none of its own."""
        own = {id(c): n for c, n in zip(self.senders, self.sent_by, strict=True)}
        lost = extra = 0
        for client in self.clients:
            expected = self.sent - own.get(id(client), 0)
            lost += max(0, expected - client.received)
            extra += max(0, client.received - expected)
        t = self.tally
        return {
            "messages_sent": self.sent,
            "expected_deliveries": self.sent * self.fan,
            "lost": lost,
            "extra": extra,
            "echoes_seen": t.echoes,
            "format_errors": t.format_errors + t.unknown_sender + t.bad_hellos,
            "protocol_errors": t.protocol_errors,
            "json_frames": t.json_frames,
        }


async def open_clients(
    port: int, count: int, concurrency: int, tally: Tally, sample_every: int, timeout: float
) -> tuple[list[LeanClient], list[str]]:
    """Open `count` connections with at most `concurrency` handshakes in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> LeanClient:
        async with gate:
            return await connect(port, tally, sample_every=sample_every, timeout=timeout)

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    clients = [r for r in results if isinstance(r, LeanClient)]
    errors = [repr(r) for r in results if not isinstance(r, LeanClient)]
    return clients, errors


async def close_all(clients: Sequence[LeanClient], timeout: float = 3.0) -> None:
    await asyncio.gather(*(c.close(timeout) for c in clients), return_exceptions=True)


async def make_room(args: argparse.Namespace, sample_every: int) -> Room:
    tally = Tally()
    clients, errors = await open_clients(
        args.port, args.clients, 50, tally, sample_every, args.connect_timeout
    )
    if errors:
        await close_all(clients)
        raise RuntimeError(f"{len(errors)} of {args.clients} connections failed: {errors[:3]}")
    pad = b"x" * max(0, args.payload_size - 30)
    return Room(clients, clients[: max(1, min(args.senders, len(clients)))], tally, payload_pad=pad)


async def burst(args: argparse.Namespace) -> dict[str, Any]:
    """Senders keep at most `window` messages un-delivered; refill when half has drained."""
    room = await make_room(args, args.sample_every)
    deliveries = args.window_deliveries or max(2000, 20 * len(room.clients))
    window = args.window or max(4, math.ceil(deliveries / max(1, room.fan)))
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

    room.tally.on_receive = pump
    pump()
    await asyncio.sleep(args.warmup)
    start = Window.take(room.tally, room.sent, args.server_pid)
    room.tally.latency_from_ns = time.monotonic_ns()
    await asyncio.sleep(args.duration)
    room.tally.latency_to_ns = time.monotonic_ns()
    end = Window.take(room.tally, room.sent, args.server_pid)
    running = False
    await room.drain(args.drain_timeout)
    result = window_figures(start, end)
    result.update(room.correctness())
    result.update(latency_figures(room.tally))
    result.update(clients=len(room.clients), senders=len(room.senders), window_msgs=window)
    await close_all(room.clients)
    return result


async def rate(args: argparse.Namespace) -> dict[str, Any]:
    """Open-loop: messages leave on a fixed schedule; every delivery's latency is sampled."""
    room = await make_room(args, args.sample_every)
    loop = asyncio.get_running_loop()
    per_tick_cap = max(1, math.ceil(args.rate * 0.05))
    overload_at = max(10_000, int(args.rate * room.fan * 2.0))
    started = loop.time()
    measure_at = started + args.warmup
    stop_at = measure_at + args.duration
    start: Window | None = None
    overloaded = False
    turn = 0
    while (now := loop.time()) < stop_at:
        if start is None and now >= measure_at:
            start = Window.take(room.tally, room.sent, args.server_pid)
            room.tally.latency_from_ns = time.monotonic_ns()
        due = min(per_tick_cap, int((now - started) * args.rate) - room.sent)
        for _ in range(max(0, due)):
            room.send(turn)
            turn = (turn + 1) % len(room.senders)
        if room.outstanding() > overload_at:
            overloaded = True
            break
        await asyncio.sleep(0.001)
    room.tally.latency_to_ns = time.monotonic_ns()
    if start is None:
        start = Window.take(room.tally, room.sent, args.server_pid)
    end = Window.take(room.tally, room.sent, args.server_pid)
    await room.drain(args.drain_timeout)
    result = window_figures(start, end)
    result.update(room.correctness())
    result.update(latency_figures(room.tally))
    result.update(clients=len(room.clients), senders=len(room.senders), target_rate=args.rate)
    result["overloaded"] = overloaded
    await close_all(room.clients)
    return result


async def storm(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, read RSS, open `connections` at `concurrency` at a time, settle, read RSS."""
    pid = args.server_pid
    warm = Tally()
    warm_clients, errors = await open_clients(args.port, 10, 10, warm, 1, args.connect_timeout)
    warm_room = Room(warm_clients, warm_clients, warm)
    for i in range(len(warm_clients)):
        warm_room.send(i)
    await warm_room.drain(5.0)
    await close_all(warm_clients)
    await asyncio.sleep(0.3)
    rss_before = procstat.tree_rss_kib(pid) if pid else 0
    tally = Tally()
    first = Window.take(tally, 0, pid)
    clients, errors = await open_clients(
        args.port, args.connections, args.concurrency, tally, 1, args.connect_timeout
    )
    last = Window.take(tally, 0, pid)
    await asyncio.sleep(args.settle)
    rss_after = procstat.tree_rss_kib(pid) if pid else 0
    alive = sum(1 for c in clients if not c.closed)
    handshake_ms = [(c.t_handshake - c.t_start) * 1000 for c in clients]
    hello_ms = [(c.t_hello - c.t_start) * 1000 for c in clients]
    wall = last.wall - first.wall
    result: dict[str, Any] = {
        "connections": args.connections,
        "concurrency": args.concurrency,
        "opened": len(clients),
        "failed": len(errors),
        "first_errors": errors[:3],
        "alive_after_settle": alive,
        "wall_s": wall,
        "conn_per_s": len(clients) / wall if wall > 0 else 0.0,
        "p50_handshake_ms": percentile(handshake_ms, 50),
        "p99_handshake_ms": percentile(handshake_ms, 99),
        "p99_hello_ms": percentile(hello_ms, 99),
        "client_cpu_util": procstat.utilisation(first.client, last.client),
        "core_busy": procstat.core_utilisation(first.cores, last.cores),
        "bad_hellos": tally.bad_hellos,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_conn": (rss_after - rss_before) / alive if alive else math.nan,
    }
    if first.server is not None and last.server is not None:
        result["server_cpu_util"] = procstat.utilisation(first.server, last.server)
        result["other_cpu_util"] = other_utilisation(first, last)
    await close_all(clients)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Chat benchmark load generator")
    sub = parser.add_subparsers(dest="scenario", required=True)
    for name in ("burst", "rate", "storm"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--server-pid", type=int, default=0)
        p.add_argument("--connect-timeout", type=float, default=15.0)
        p.add_argument("--max-seconds", type=int, default=300, help="hard stop (SIGALRM)")
        if name == "storm":
            p.add_argument("--connections", type=int, default=1000)
            p.add_argument("--concurrency", type=int, default=50)
            p.add_argument("--settle", type=float, default=1.0)
            continue
        p.add_argument("--clients", type=int, default=100)
        p.add_argument("--senders", type=int, default=3)
        p.add_argument("--warmup", type=float, default=1.0)
        p.add_argument("--duration", type=float, default=5.0)
        p.add_argument("--drain-timeout", type=float, default=5.0)
        p.add_argument("--payload-size", type=int, default=32)
        p.add_argument("--sample-every", type=int, default=64 if name == "burst" else 1)
        if name == "burst":
            p.add_argument("--window", type=int, default=0, help="messages in flight (0 = auto)")
            p.add_argument(
                "--window-deliveries", type=int, default=0, help="0 = max(2000, 20 x clients)"
            )
            p.add_argument(
                "--poll-interval-ms", type=float, default=-1.0, help="-1 = clients/50, 1..20"
            )
        else:
            p.add_argument("--rate", type=float, required=True, help="messages per second")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.alarm(max(1, args.max_seconds))  # default action ends the process: bounded in time
    procstat.raise_nofile_limit()
    scenario = {"burst": burst, "rate": rate, "storm": storm}[args.scenario]
    interval_ms = getattr(args, "poll_interval_ms", 0.0)
    if interval_ms < 0:
        interval_ms = min(20.0, max(1.0, args.clients / 50))
    try:
        with asyncio.Runner(loop_factory=lambda: new_event_loop(interval_ms / 1000)) as runner:
            result = runner.run(scenario(args))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    result["scenario"] = args.scenario
    result["poll_interval_ms"] = interval_ms
    print(json.dumps(result, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
