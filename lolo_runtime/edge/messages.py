"""WebSocket frames to whole messages: fragments joined, text decoded. Pure (no I/O).

The websockets library's Sans-I/O protocol yields frames; a message may come in several
(a first TEXT or BINARY frame, then CONT frames, the last with ``fin``). The protocol
already bounds a message's size (1009); this bounds its number of fragments, since each
costs work whatever its size, and refuses text that is not UTF-8 (1007).
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode

MAX_FRAGMENTS = 4096
"""Fragments allowed in one message."""


class MessageError(Exception):
    """The client broke the protocol; the connection fails with ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class MessageAssembler:
    """Feed it data frames; it hands back each message once its last frame is in."""

    __slots__ = ("_fragments", "_opcode")

    def __init__(self) -> None:
        self._fragments: list[bytes] = []
        self._opcode: Opcode | None = None

    def feed(self, frame: Frame) -> tuple[str | bytes, int] | None:
        """``(message, size in bytes)`` when ``frame`` completes one, else None."""
        opcode = frame.opcode
        data = frame.data if isinstance(frame.data, bytes) else bytes(frame.data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return _message(opcode, data), len(data)
            self._opcode, self._fragments = opcode, [data]
            return None
        if opcode is not Opcode.CONT or self._opcode is None:
            return None  # control frames are the protocol's; a stray CONT it refuses itself
        self._fragments.append(data)
        if len(self._fragments) > MAX_FRAGMENTS:
            raise MessageError(1009, f"more than {MAX_FRAGMENTS} fragments in one message")
        if not frame.fin:
            return None
        whole, self._fragments = b"".join(self._fragments), []
        first, self._opcode = self._opcode, None
        return _message(first, whole), len(whole)


def _message(opcode: Opcode, data: bytes) -> str | bytes:
    if opcode is not Opcode.TEXT:
        return data
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        raise MessageError(
            1007, f"invalid UTF-8: {error.reason} at position {error.start}"
        ) from None
