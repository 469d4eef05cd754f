"""Outgoing WebSocket frames, encoded once per message rather than once per client.

A fan-out sends the same text to many clients. The websockets library builds the frame
again for each connection, because connections may negotiate different extensions;
when compression is off a server frame (never masked) is the same bytes for every
client, so the trigger encodes it once and writes those bytes to each transport.
Connections that did negotiate an extension go through the library as usual.
"""

from __future__ import annotations

import json
import struct
from typing import Any

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80


def frame_header(opcode: int, length: int) -> bytes:
    """RFC 6455 header of an unfragmented, unmasked frame carrying ``length`` bytes."""
    first = _FIN | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Made once: ``json.dumps`` with options builds an encoder on every call."""


def payload_of(body: Any) -> tuple[int, bytes]:
    """How a ``response`` body goes out: str as text, bytes as binary, else JSON text."""
    if isinstance(body, str):
        return OP_TEXT, body.encode()
    if isinstance(body, bytes | bytearray | memoryview):
        return OP_BINARY, bytes(body)
    text = _JSON.encode(body)
    return OP_TEXT, text.encode()


class FrameCache:
    """Remembers the frame of the last str or bytes body sent.

    Only immutable bodies are cached: a dict could change between two sends and must be
    encoded each time.
    """

    __slots__ = ("_body", "_frame")

    def __init__(self) -> None:
        self._body: str | bytes | None = None
        self._frame = b""

    def frame(self, body: Any) -> bytes:
        if body is self._body:
            return self._frame
        if type(body) is str or type(body) is bytes:
            if body == self._body:
                return self._frame
            opcode, payload = payload_of(body)
            self._body, self._frame = body, frame_header(opcode, len(payload)) + payload
            return self._frame
        opcode, payload = payload_of(body)
        return frame_header(opcode, len(payload)) + payload
