"""The WebSocket opening handshake, client side: request, checks, and a blocking probe.

Written from RFC 6455 section 4: the client sends a random 16-byte key; the server must answer
101 with Sec-WebSocket-Accept = base64(sha1(key + GUID)). Only loopback targets are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import socket

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE_BYTES = 16 * 1024


def check_loopback(host: str) -> None:
    """Refuse any target that is not on this machine: the harness only ever loads loopback."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"refusing non-loopback target {host!r}")


def new_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def expected_accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def upgrade_request(host: str, port: int, path: str, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\n\r\n"
    ).encode()


def check_upgrade_response(head: bytes, key: bytes) -> str | None:
    """Return None if `head` (status line + headers) accepts the upgrade, else the reason."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[1] != "101":
        return f"status line {lines[0]!r}"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        return "missing Upgrade: websocket"
    if headers.get("sec-websocket-accept", "").encode() != expected_accept(key):
        return "bad Sec-WebSocket-Accept"
    if "sec-websocket-extensions" in headers:
        return "server negotiated an extension we did not offer"
    return None


def probe_handshake(port: int, host: str = "127.0.0.1", path: str = "/socket") -> bool:
    """One blocking upgrade attempt; True on a valid 101 response. Used to time startup."""
    check_loopback(host)
    key = new_key()
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(upgrade_request(host, port, path, key))
            data = b""
            while b"\r\n\r\n" not in data and len(data) < MAX_HANDSHAKE_BYTES:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0]
            return check_upgrade_response(head, key) is None
    except OSError:
        return False
