"""Backpressure with one 20 MB frame, far over the 1 MiB send buffer cap.

Whether a client is too slow is judged by progress, not by size: a client that reads gets
a frame of any size, quickly or slowly, and stays connected; one that reads nothing for
``send_stall_timeout`` (1 s in tests/hardening/flows/big-frames.yaml) is closed with 1013,
and its close chain is told 1013.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from tests.hardening.wire import (
    FLOWS,
    OP_TEXT,
    RawClient,
    alive,
    assert_clean_log,
    figure,
    frame,
    server_pid,
    status_kib,
)
from tests.support import LoloProcess

BIG = 20_000_000
STALL = 1.0  # send_stall_timeout
CLOSE_TIMEOUT = 1.0
SLICE = 256 * 1024
TICK = 0.05


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOWS / "big-frames.yaml") as process:
        yield process


def closed_codes(server: LoloProcess) -> list[int]:
    return [int(code) for code in re.findall(r"big closed code=(\d+)", server.stderr())]


def _wait_codes(server: LoloProcess, timeout: float = 5.0) -> list[int]:
    """The close codes logged, once there is at least one (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not closed_codes(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    return closed_codes(server)


def test_a_client_that_reads_gets_the_whole_20_mb_frame_and_stays(server: LoloProcess) -> None:
    async def scenario() -> tuple[float, str | bytes]:
        async with connect(server.url(), max_size=None, compression=None) as ws:
            started = time.monotonic()
            await ws.send("big")
            message = await asyncio.wait_for(ws.recv(), 30)
            took = time.monotonic() - started
            assert isinstance(message, str)
            assert len(message) == BIG and message.count("x") == BIG
            await ws.send("still there?")
            return took, await asyncio.wait_for(ws.recv(), 5)

    took, echo = asyncio.run(scenario())
    assert echo == "still there?"
    figure("big_frame.20mb_to_a_reading_client_s", f"{took:.2f}")
    figure("big_frame.server_peak_rss_kib", status_kib(server_pid(server), "VmHWM"))
    assert _wait_codes(server) == [1000]
    assert_clean_log(server)


class FrameReader:
    """Server frames from a raw socket, read ``SLICE`` bytes at most every ``TICK``."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()
        self.reads = 0

    def _more(self, pace: bool) -> None:
        chunk = self.sock.recv(SLICE)
        if not chunk:
            raise EOFError(f"closed by the server after {self.reads} reads")
        self.buffer += chunk
        self.reads += 1
        if pace:
            time.sleep(TICK)

    def _need(self, count: int, pace: bool) -> None:
        while len(self.buffer) < count:
            self._more(pace)

    def read_frame(self, pace: bool) -> tuple[int, bytes]:
        self._need(2, pace)
        opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        start = 2
        if size == 126:
            self._need(4, pace)
            (size,) = struct.unpack("!H", self.buffer[2:4])
            start = 4
        elif size == 127:
            self._need(10, pace)
            (size,) = struct.unpack("!Q", self.buffer[2:10])
            start = 10
        self._need(start + size, pace)
        payload = bytes(self.buffer[start : start + size])
        del self.buffer[: start + size]
        return opcode, payload


def test_a_client_that_reads_slowly_but_steadily_gets_it_too(server: LoloProcess) -> None:
    """256 KiB every 50 ms (about 5 MB/s): a few seconds for the frame, never a whole
    second without progress, so never 1013."""
    with RawClient(server.port, timeout=10) as raw:
        assert raw.handshake().status == 101
        reader = FrameReader(raw.sock)
        started = time.monotonic()
        raw.send(frame(OP_TEXT, b"big"))
        opcode, payload = reader.read_frame(pace=True)
        took = time.monotonic() - started
        assert opcode == OP_TEXT
        assert len(payload) == BIG and payload.count(b"x") == BIG
        raw.send(frame(OP_TEXT, b"after"))
        assert reader.read_frame(pace=False) == (OP_TEXT, b"after")
    figure("big_frame.20mb_at_256kib_per_50ms_s", f"{took:.2f} ({reader.reads} reads)")
    assert took > STALL  # it really was slower than the stall window
    assert _wait_codes(server) == [1006]  # it left without a close frame: not cut off
    assert "not reading" not in server.stderr()
    assert_clean_log(server)


def test_a_client_that_stops_reading_is_closed_with_1013_after_the_stall_timeout(
    server: LoloProcess,
) -> None:
    with RawClient(server.port, rcvbuf=4096) as raw:
        assert raw.handshake().status == 101
        sent = time.monotonic()
        raw.send(frame(OP_TEXT, b"big"))
        # Never reads again. The server decides (1013) after STALL without progress, then
        # gives up on the closing handshake after CLOSE_TIMEOUT.
        decided = closed = None
        deadline = sent + STALL + CLOSE_TIMEOUT + 10
        while time.monotonic() < deadline and closed is None:
            log = server.stderr()
            if decided is None and "client is not reading; closing (1013)" in log:
                decided = time.monotonic() - sent
            if closed_codes(server):
                closed = time.monotonic() - sent
            time.sleep(0.01)
        assert alive(server)
    assert decided is not None, server.stderr()
    assert closed is not None, server.stderr()
    figure("big_frame.never_reader_1013_decided_after_s", f"{decided:.2f}")
    figure("big_frame.never_reader_close_chain_after_s", f"{closed:.2f}")
    assert STALL * 0.9 <= decided < STALL + 1.5
    assert closed < STALL + CLOSE_TIMEOUT + 1.5
    assert closed_codes(server) == [1013]
    assert_clean_log(server)


def test_the_server_keeps_serving_while_one_client_is_stuck(server: LoloProcess) -> None:
    """A stuck 20 MB send does not hold the event loop: another client is answered at once
    while the stuck one waits for its 1013."""
    with RawClient(server.port, rcvbuf=4096) as stuck:
        assert stuck.handshake().status == 101
        stuck.send(frame(OP_TEXT, b"big"))

        async def other() -> float:
            async with connect(server.url(), compression=None) as ws:
                started = time.monotonic()
                await ws.send("quick")
                assert await asyncio.wait_for(ws.recv(), 5) == "quick"
                return time.monotonic() - started

        time.sleep(0.2)  # the big frame is queued and stuck by now
        answered = asyncio.run(other())
    figure("big_frame.other_client_round_trip_while_stuck_ms", f"{answered * 1000:.1f}")
    assert answered < 0.5
    assert_clean_log(server)


def take_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """Cut one whole server frame off the front of ``buffer``, if it holds one."""
    if len(buffer) < 2:
        return None
    size, start = buffer[1] & 0x7F, 2
    if size == 126:
        (size,), start = struct.unpack("!H", buffer[2:4]), 4
    elif size == 127:
        (size,), start = struct.unpack("!Q", buffer[2:10]), 10
    if len(buffer) < start + size:
        return None
    opcode, payload = buffer[0] & 0x0F, bytes(buffer[start : start + size])
    del buffer[: start + size]
    return opcode, payload


def test_a_reader_slower_than_a_burst_is_not_taken_for_one_that_stopped(
    server: LoloProcess,
) -> None:
    """Bursts for a client may outpace it for a while: it drains, just less than arrives,
    so its unsent bytes grow within a stall window. That is progress, not a stall (only
    the ceiling, four caps beyond its largest frame, bounds it).

    5 MiB arrive at once (the kernel holds 3-4 MB of it, so one or two MiB wait in the
    server, over the 1 MiB cap), then 2 MiB more half a window later, while the client
    reads about 1.6 MB/s: less than arrives in that window, far more than nothing.
    """
    first, second, slice_size = 20, 8, 256 * 1024
    with RawClient(server.port, rcvbuf=65536) as slow:
        assert slow.handshake().status == 101
        slow.sock.setblocking(False)

        async def read_slowly() -> int:
            loop = asyncio.get_running_loop()
            buffer, got, started = bytearray(), 0, time.monotonic()
            while got < first + second:
                chunk = await asyncio.wait_for(loop.sock_recv(slow.sock, 64 * 1024), 10)
                if not chunk:
                    raise EOFError(f"closed by the server after {got} messages")
                buffer += chunk
                while (taken := take_frame(buffer)) is not None:
                    assert taken == (OP_TEXT, b"y" * slice_size), taken[:1]
                    got += 1
                if time.monotonic() - started < 2 * STALL:
                    await asyncio.sleep(0.04)  # 64 KiB every 40 ms: about 1.6 MB/s
            return got

        async def burst() -> None:
            async with connect(server.url(), compression=None) as sender:
                await sender.send(f"burst {first}")
                await asyncio.sleep(STALL / 2)
                await sender.send(f"burst {second}")
                await asyncio.sleep(STALL)

        async def scenario() -> tuple[int, float]:
            started = time.monotonic()
            got, _ = await asyncio.gather(read_slowly(), burst())
            return got, time.monotonic() - started

        got, took = asyncio.run(scenario())
    figure("big_frame.slow_reader_through_bursts", f"{got} x 256 KiB in {took:.2f}s")
    assert "not reading" not in server.stderr(), server.stderr()
    assert_clean_log(server)
