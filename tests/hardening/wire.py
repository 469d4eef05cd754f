"""Shared tools of the hardening tests: chat clients, a raw-socket WebSocket client, the
server's memory and log, and figures for ``docs/reliability.md``.

Everything here talks to a real ``lolo-run`` process (see :class:`tests.support.LoloProcess`)
over 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.support import LoloProcess

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "flows"
WAIT = 10.0
"""How long a test waits for something that should happen at once (generous on purpose)."""


# --------------------------------------------------------------------------- figures


def figure(name: str, value: object) -> None:
    """Record a measured figure: printed (see it with ``pytest -s``) and, when
    ``$LOLO_FIGURES`` names a file, appended to it as a JSON line."""
    print(f"FIGURE {name}: {value}")
    target = os.environ.get("LOLO_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"name": name, "value": value}) + "\n")


# --------------------------------------------------------------------------- the server


def status_kib(pid: int, field_name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status``: ``VmRSS`` (resident now), ``VmHWM`` (peak)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field_name} not in /proc/{pid}/status")


def server_pid(server: LoloProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


def alive(server: LoloProcess) -> bool:
    return server.proc is not None and server.proc.poll() is None


async def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Poll ``check`` until it holds; return the seconds it took. Fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def close_codes(server: LoloProcess) -> dict[str, int | None]:
    """Session id -> close code, from the ``closed code=...`` lines of handlers/close_log.py."""
    found: dict[str, int | None] = {}
    for match in re.finditer(r"session=([0-9a-f-]{36})\] closed code=(\w+)", server.stderr()):
        found[match.group(1)] = None if match.group(2) == "None" else int(match.group(2))
    return found


_TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def tcp_state(local_port: int, remote_port: int) -> str | None:
    """The kernel's state of the IPv4 TCP socket ``local_port -> remote_port`` (both on this
    machine), from ``/proc/net/tcp``; None once the socket is gone."""
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.split(":")[1], 16) == local_port
                and int(remote.split(":")[1], 16) == remote_port
            ):
                return _TCP_STATES.get(fields[3], fields[3])
    return None


def assert_clean_log(server: LoloProcess) -> None:
    """No crash, no unexpected error: the server's stderr has no traceback at all."""
    log = server.stderr()
    assert "Traceback" not in log, log
    assert "Task exception was never retrieved" not in log, log


# --------------------------------------------------------------------------- chat clients


def is_history(message: str | bytes) -> bool:
    """Whether ``message`` is the chat's ``{"history": [...]}`` frame for newcomers."""
    if not isinstance(message, str) or not message.startswith('{"history":'):
        return False
    try:
        value = json.loads(message)
    except ValueError:
        return False
    return isinstance(value, dict) and list(value) == ["history"]


@dataclass
class Chatter:
    """A chat client: its connection and the session id its connect message gave it."""

    ws: ClientConnection
    session_id: str
    received: list[str | bytes] = field(default_factory=list)

    async def recv(self, timeout: float = WAIT) -> str | bytes:
        """The next message, skipping the ``{"history": ...}`` frame a newcomer may get."""
        while True:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            if not is_history(message):
                return message

    async def send(self, message: str | bytes | list[str] | list[bytes]) -> None:
        await self.ws.send(message)


@asynccontextmanager
async def chatter(
    server: LoloProcess, path: str = "/socket", **options: object
) -> AsyncIterator[Chatter]:
    """Connect to the chat at ``path`` and read the connect message."""
    kwargs: dict[str, object] = {"compression": None, **options}
    async with connect(server.url(path), **kwargs) as ws:  # type: ignore[arg-type]
        hello = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert hello["connected"] is True, hello
        yield Chatter(ws, hello["yourConnectionId"])


async def still_chatting(
    a: Chatter, b: Chatter, text: str = "still here?", echo: bool = False
) -> None:
    """A and B can talk both ways. ``echo``: the flow also sends each message back to its
    sender (flows/hostile.yaml), and those echoes are checked too."""
    await a.send(text)
    assert await b.recv() == f"{a.session_id} says: {text}"
    await b.send(f"re: {text}")
    if echo:
        assert await b.recv() == f"re: {text}"
        assert await a.recv() == text
    assert await a.recv() == f"{b.session_id} says: re: {text}"


# --------------------------------------------------------------------------- raw sockets

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv1: bool = False
) -> bytes:
    """Encode one WebSocket frame as a client would (masked unless ``mask`` is False)."""
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head.append(bit | size)
    elif size < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", size)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes(head) + key + masked


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawClient:
    """A WebSocket client on a bare socket, for what well-behaved libraries refuse to do:
    send broken frames, never read, or never finish the handshake."""

    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = WAIT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.port = port
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def handshake(
        self, path: str = "/socket", headers: dict[str, str] | None = None
    ) -> RawResponse:
        """Send an upgrade request and read the response head (and body, if refused)."""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self._buffer!r}")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
        response = RawResponse(int(status_line.split()[1]), found, b"")
        if response.status != 101:
            length = int(found.get("content-length", "0"))
            while len(self._buffer) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self._buffer += chunk
            response.body, self._buffer = self._buffer[:length], self._buffer[length:]
        return response

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """One server frame as ``(opcode, payload)``; raises EOFError at end of stream."""
        first, second = self._read_exactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read_exactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read_exactly(8))
        return first & 0x0F, self._read_exactly(size)

    def read_until_close(self) -> tuple[int | None, list[tuple[int, bytes]]]:
        """Read frames up to the server's close frame; return its code (None if the stream
        ended without one) and the frames before it."""
        frames: list[tuple[int, bytes]] = []
        while True:
            try:
                opcode, payload = self.read_frame()
            except EOFError:
                return None, frames
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, frames
            frames.append((opcode, payload))

    def wait_closed(self) -> float:
        """Read and discard until the server closes the TCP stream; return seconds waited."""
        start = time.monotonic()
        while self.sock.recv(65536):
            pass
        return time.monotonic() - start
