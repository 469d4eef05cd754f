"""A lean WebSocket client on a raw asyncio Protocol, built to generate load cheaply.

It does the HTTP/1.1 upgrade itself (and checks Sec-WebSocket-Accept), sends masked text frames,
and walks incoming (unmasked) server frames only far enough to count them. Full parsing happens
only for the first frame (the chat's hello) and for sampled frames, which carry a send timestamp.
It offers no extensions, so the server cannot turn compression on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from handshake import (
    MAX_HANDSHAKE_BYTES,
    check_loopback,
    check_upgrade_response,
    new_key,
    upgrade_request,
)

SAYS = b" says: "
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
# One receive buffer shared by every connection: each read is consumed synchronously in
# buffer_updated() before the loop can read another socket, so sharing is safe. It spares the
# per-read 256 KiB allocation that plain Protocol.data_received costs.
_RECV_BUFFER = memoryview(bytearray(256 * 1024))


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A single final client frame, masked with a random key as RFC 6455 requires."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = random.getrandbits(32).to_bytes(4, "big")
    if n == 0:
        return head + mask
    stream = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ stream).to_bytes(n, "big")


@dataclass
class Tally:
    """Counters shared by all connections of one scenario (single-threaded: no locking)."""

    received: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    latency_sent_ns: list[int] = field(default_factory=list)  # send stamp of each sample
    latency_from_ns: int = 0
    latency_to_ns: int = 1 << 62
    known_ids: set[bytes] = field(default_factory=set)
    format_errors: int = 0
    echoes: int = 0
    unknown_sender: int = 0
    protocol_errors: int = 0
    bad_hellos: int = 0
    json_frames: int = 0
    on_receive: Callable[[], None] | None = None  # called after frames were counted


class LeanClient(asyncio.BufferedProtocol):
    """One WebSocket connection. `ready` resolves once the hello frame has arrived."""

    def __init__(self, host: str, port: int, path: str, tally: Tally, sample_every: int) -> None:
        self.key = new_key()
        self.request = upgrade_request(host, port, path, self.key)
        self.tally = tally
        self.sample_every = sample_every
        self.countdown = sample_every
        self.received = 0
        self.session_id = b""
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.closed = False
        loop = asyncio.get_running_loop()
        self.t_start = time.perf_counter()
        self.t_handshake = 0.0
        self.t_hello = 0.0
        self.ready: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost before hello: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _RECV_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        data = _RECV_BUFFER[:nbytes].tobytes()
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HANDSHAKE_BYTES:
                    self._fail("oversized handshake response")
                else:
                    self.buf = data
                return
            problem = check_upgrade_response(data[:end], self.key)
            if problem is not None:
                self._fail(problem)
                return
            self.upgraded = True
            self.t_handshake = time.perf_counter()
            data = data[end + 4 :]
        self._frames(data)

    # -- frame walking -----------------------------------------------------------------------
    def _frames(self, data: bytes) -> None:
        pos, size, count = 0, len(data), 0
        now = 0
        while size - pos >= 2:
            b0 = data[pos]
            length = data[pos + 1]
            if length & 0x80:
                self.tally.protocol_errors += 1  # servers must not mask
                length &= 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            pos = end
            # A final text frame is one delivery; JSON objects ('{', 123) are app notices such
            # as lolo-run's {"history": [...]} after the hello, not chat deliveries.
            if b0 == 0x81 and self.session_id and (end == start or data[start] != 123):
                count += 1
                self.countdown -= 1
                if self.countdown == 0:
                    self.countdown = self.sample_every
                    if not now:
                        now = time.monotonic_ns()
                    self._sample(data[start:end], now)
            else:
                self._other_frame(b0, data[start:end])
        if pos < size:
            self.buf = data[pos:]
        if count:
            self.received += count
            tally = self.tally
            tally.received += count
            if tally.on_receive is not None:
                tally.on_receive()

    def _sample(self, text: bytes, now: int) -> None:
        """Check the chat's format on a sampled delivery and record its latency."""
        tally = self.tally
        cut = text.find(SAYS)
        if cut < 0:
            tally.format_errors += 1
            return
        sender = text[:cut]
        if sender == self.session_id:
            tally.echoes += 1
        elif sender not in tally.known_ids:
            tally.unknown_sender += 1
        stamp = text[cut + 7 :].split(b" ", 1)[0]
        if not stamp.isdigit():
            tally.format_errors += 1
            return
        sent = int(stamp)
        if tally.latency_from_ns <= sent < tally.latency_to_ns:
            tally.latencies_ns.append(now - sent)
            tally.latency_sent_ns.append(sent)

    def _other_frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        if opcode == OP_TEXT and b0 & 0x80:
            if self.session_id:
                self.tally.json_frames += 1
            else:
                self._hello(payload)
        elif opcode == OP_PING:
            self._write(client_frame(payload, OP_PONG))
        elif opcode == OP_CLOSE:
            self._write(client_frame(payload[:2], OP_CLOSE))
            if self.transport is not None:
                self.transport.close()
        elif opcode == OP_CONT and b0 & 0x80:
            self.received += 1  # end of a fragmented message: still one delivery
            self.tally.received += 1
        elif opcode not in (OP_PONG, OP_CONT, OP_TEXT, OP_BINARY):
            self.tally.protocol_errors += 1

    def _hello(self, payload: bytes) -> None:
        try:
            hello = json.loads(payload)
            ident = hello["yourConnectionId"]
            ok = hello.get("connected") is True and isinstance(ident, str) and ident != ""
        except (ValueError, KeyError, TypeError, AttributeError):
            ok, ident = False, ""
        if not ok:
            self.tally.bad_hellos += 1
            ident = ident if isinstance(ident, str) and ident else f"?{id(self)}"
        self.session_id = ident.encode()
        self.tally.known_ids.add(self.session_id)
        self.t_hello = time.perf_counter()
        if not self.ready.done():
            self.ready.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"handshake failed: {reason}"))
        if self.transport is not None:
            self.transport.abort()

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    # -- public API --------------------------------------------------------------------------
    def send_text(self, payload: bytes) -> None:
        self._write(client_frame(payload))

    async def close(self, timeout: float) -> None:
        """Send a close frame, wait (bounded) for the server to close, then drop the socket."""
        if self.transport is None or self.closed:
            return
        self._write(client_frame(b"\x03\xe8", OP_CLOSE))
        try:
            async with asyncio.timeout(timeout):
                await self.lost
        except TimeoutError:
            self.transport.abort()


async def connect(
    port: int,
    tally: Tally,
    *,
    host: str = "127.0.0.1",
    path: str = "/socket",
    sample_every: int = 1,
    timeout: float = 10.0,
) -> LeanClient:
    """Open one connection and wait for the chat's hello frame (bounded by `timeout`)."""
    check_loopback(host)
    loop = asyncio.get_running_loop()
    factory = functools.partial(LeanClient, host, port, path, tally, sample_every)
    t0 = time.perf_counter()
    # asyncio.timeout, unlike wait_for, creates no extra task: cheaper in a connect storm.
    async with asyncio.timeout(timeout):
        transport, proto = await loop.create_connection(factory, host, port)
        proto.t_start = t0
        try:
            await proto.ready
        except BaseException:
            transport.abort()
            raise
    return proto
