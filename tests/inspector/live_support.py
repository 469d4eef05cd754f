"""What the inspector's end-to-end tests share: raw HTTP, chat clients, the live socket."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.inspector.promtext import Exposition, parse
from tests.support import LoloProcess

KEY = "test-inspector-key-0123456789abcdef"


def http_get(server: LoloProcess, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One GET over a fresh connection: status, headers (lower-case names), body."""
    head = {"host": f"127.0.0.1:{server.port}", "connection": "close", **headers}
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body


def metrics(server: LoloProcess, **headers: str) -> Exposition:
    status, fields, body = http_get(server, "/_lolo/metrics", **headers)
    assert status == 200, body
    assert fields["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(body.decode())


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds (the figures move asynchronously to the clients)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@asynccontextmanager
async def chat_client(server: LoloProcess) -> AsyncIterator[tuple[ClientConnection, str]]:
    async with connect(server.url(), compression=None) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["connected"] is True
        yield ws, hello["yourConnectionId"]


async def next_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str)
    decoded: dict[str, Any] = json.loads(message)
    return decoded


def live_url(server: LoloProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/_lolo/live"


def edge_events(figures: dict[str, Any], key: str) -> int:
    """``figures``' count for the edge ``source.port->target.in_port``."""
    for edge in figures["edges"]:
        if f"{edge['source']}.{edge['port']}->{edge['target']}.{edge['inPort']}" == key:
            count: int = edge["events"]
            return count
    raise KeyError(key)
