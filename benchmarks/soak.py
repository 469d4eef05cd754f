"""Soak test: many chat clients broadcasting sequence-numbered messages for a while.

Starts a real ``lolo-run flows/chat.yaml`` on 127.0.0.1 (fresh ``--state`` file, rate limit
raised through ``CHAT_MAX_MESSAGES_PER_SECOND``), connects ``--clients`` WebSocket clients,
and has each send ``--rate`` messages a second for ``--duration`` seconds. Every client
checks every message it gets from every other client: its sequence number must be exactly
one more than the last one from that sender. At the end each client must have received
every message every other client sent.

Verdict (exit status 0 only if all hold): zero lost, zero duplicated, zero out of order,
no client disconnected early, the server still running, and its memory flat at the end:
resident memory (VmRSS) at the end no more than ``--rss-slack-mib`` above its level halfway
through the run. RSS at the start, halfway, peak and end is reported.

    python benchmarks/soak.py                          # 200 clients, 60 s
    python benchmarks/soak.py --clients 20 --duration 3 --json result.json

Everything is bounded: connecting, the run, and draining have deadlines, and the server
process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "flows" / "chat.yaml"
LISTENING = re.compile(r"Listening to port (\d+)")
MESSAGE = re.compile(r"^(\S+) says: soak (\d+) (\d+) ")


@dataclass
class Result:
    clients: int
    duration_s: float
    rate_per_client: float
    sent: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unexpected: int = 0
    early_disconnects: int = 0
    drain_s: float = 0.0
    deliveries_per_s: float = 0.0
    rss_kib: dict[str, int] = field(default_factory=dict)
    rss_samples_kib: list[int] = field(default_factory=list)
    server_alive: bool = True
    server_errors: int = 0
    rss_flat: bool = True
    ok: bool = False


class Client:
    """One chat client: sends its numbered messages, checks everyone else's."""

    def __init__(self, index: int, ws: ClientConnection, session_id: str, clients: int):
        self.index = index
        self.ws = ws
        self.session_id = session_id
        self.sent = 0
        # Per sender index: the last sequence number seen, and how many arrived.
        self.last = [-1] * clients
        self.count = [0] * clients
        self.duplicated = 0
        self.out_of_order = 0
        self.unexpected = 0
        self.closed_early = False

    async def receive(self) -> None:
        try:
            async for message in self.ws:
                if not isinstance(message, str):
                    self.unexpected += 1
                    continue
                match = MESSAGE.match(message)
                if match is None:
                    if not message.startswith('{"history":'):
                        self.unexpected += 1
                    continue
                sender, seq = int(match.group(2)), int(match.group(3))
                last = self.last[sender]
                if seq == last + 1:
                    self.last[sender] = seq
                    self.count[sender] += 1
                elif seq <= last:  # seen already, or arriving after a later one
                    self.duplicated += 1
                else:  # a jump ahead: the ones skipped are lost or will come late
                    self.out_of_order += 1
                    self.last[sender] = seq
                    self.count[sender] += 1
        except ConnectionClosed:
            pass
        self.closed_early = True  # only reached if the server closed us

    async def send_for(self, rate: float, until: float, offset: float, pad: str) -> None:
        start = time.monotonic() + offset
        while True:
            due = start + self.sent / rate
            if due >= until:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.ws.send(f"soak {self.index} {self.sent} {pad}")
            except ConnectionClosed:
                return
            self.sent += 1


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_server(flow: Path, state: Path, rate_limit: str) -> tuple[subprocess.Popen[bytes], int]:
    script = shutil.which("lolo-run")
    command = [script] if script else [sys.executable, "-m", "lolo_runtime.cli"]
    env = {**os.environ, "CHAT_MAX_MESSAGES_PER_SECOND": rate_limit}
    proc = subprocess.Popen(
        [
            *command,
            str(flow),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state",
            str(state),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        match = LISTENING.search(line)
        if match:
            return proc, int(match.group(1))
    proc.kill()
    _, err = proc.communicate()
    raise SystemExit(f"lolo-run did not start:\n{err.decode(errors='replace')}")


async def open_client(url: str, index: int, clients: int) -> Client:
    ws = await connect(url, compression=None, max_queue=None, open_timeout=30, ping_interval=None)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
    return Client(index, ws, hello["yourConnectionId"], clients)


async def soak(port: int, pid: int, args: argparse.Namespace) -> Result:
    result = Result(args.clients, args.duration, args.rate)
    url = f"ws://127.0.0.1:{port}/socket"
    clients: list[Client] = []
    for first in range(0, args.clients, 50):  # connect in waves of 50
        wave = range(first, min(first + 50, args.clients))
        clients += await asyncio.gather(*(open_client(url, i, args.clients) for i in wave))
    readers = [asyncio.create_task(c.receive()) for c in clients]
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(rss_kib(pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.sleep(0.5)  # let the history frames of the newcomers arrive
        result.rss_kib["start"] = rss_kib(pid)
        started = time.monotonic()
        until = started + args.duration
        pad = "x" * args.pad
        halfway = asyncio.get_running_loop().call_at(
            asyncio.get_running_loop().time() + args.duration / 2,
            lambda: result.rss_kib.__setitem__("halfway", rss_kib(pid)),
        )
        await asyncio.gather(
            *(
                c.send_for(args.rate, until, offset=(c.index / args.clients) / args.rate, pad=pad)
                for c in clients
            )
        )
        halfway.cancel()
        sent = [c.sent for c in clients]
        result.sent = sum(sent)
        result.expected = sum(sent) * (args.clients - 1)

        def delivered() -> int:
            return sum(sum(c.count) - c.count[c.index] for c in clients)

        drain_started = time.monotonic()
        while delivered() < result.expected and time.monotonic() - drain_started < args.drain:
            if all(c.closed_early for c in clients):
                break
            await asyncio.sleep(0.05)
        result.drain_s = round(time.monotonic() - drain_started, 3)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.2)  # a moment for anything extra (duplicates) to show up
        result.received = delivered()
        result.deliveries_per_s = round(result.received / elapsed, 1)
        result.rss_kib["end"] = rss_kib(pid)
    finally:
        sampler.cancel()
        early = sum(c.closed_early for c in clients)  # before we close them ourselves
        for c in clients:
            await c.ws.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, sampler, return_exceptions=True)
    result.early_disconnects = early
    for c in clients:
        for sender, other in enumerate(clients):
            if sender != c.index:
                result.lost += max(0, other.sent - c.count[sender])
        result.duplicated += c.duplicated
        result.out_of_order += c.out_of_order
        result.unexpected += c.unexpected
    result.rss_samples_kib = samples
    result.rss_kib["peak"] = max([*samples, *result.rss_kib.values()])
    result.rss_kib.setdefault("halfway", result.rss_kib["start"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="messages a second per client (default: %(default)s)",
    )
    parser.add_argument("--pad", type=int, default=32, help="bytes of padding per message")
    parser.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="seconds allowed after sending for deliveries to finish",
    )
    parser.add_argument(
        "--rss-slack-mib",
        type=float,
        default=16.0,
        help="how far RSS at the end may sit above RSS halfway (MiB)",
    )
    parser.add_argument("--flow", type=Path, default=CHAT)
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.clients < 2 or args.duration <= 0 or args.rate <= 0:
        parser.error("need at least 2 clients, a positive duration and a positive rate")

    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(args.flow, Path(tmp) / "state.sqlite3", "1000000")
        try:
            result = asyncio.run(soak(port, proc.pid, args))
            result.server_alive = proc.poll() is None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
    log = err.decode(errors="replace")
    result.server_errors = sum(
        1 for line in log.splitlines() if " ERROR " in line or "Traceback" in line
    )
    slack = args.rss_slack_mib * 1024
    result.rss_flat = result.rss_kib["end"] <= result.rss_kib["halfway"] + slack
    result.ok = (
        result.sent > 0
        and result.lost == 0
        and result.duplicated == 0
        and result.out_of_order == 0
        and result.unexpected == 0
        and result.early_disconnects == 0
        and result.server_alive
        and result.server_errors == 0
        and result.rss_flat
    )
    report: dict[str, Any] = asdict(result)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    rss = result.rss_kib
    print(
        f"soak: {result.clients} clients, {result.duration_s:g} s at {result.rate_per_client:g}"
        f" msg/s each: sent {result.sent}, expected {result.expected} deliveries, received "
        f"{result.received} ({result.deliveries_per_s:g}/s); lost {result.lost}, duplicated "
        f"{result.duplicated}, out of order {result.out_of_order}, unexpected "
        f"{result.unexpected}, early disconnects {result.early_disconnects}, server errors "
        f"{result.server_errors}; drain {result.drain_s:g} s; RSS KiB start {rss['start']} "
        f"halfway {rss['halfway']} peak {rss['peak']} end {rss['end']} "
        f"({'flat' if result.rss_flat else 'GROWING'}): {'OK' if result.ok else 'FAIL'}"
    )
    if not result.ok and log:
        print(log[-4000:], file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
