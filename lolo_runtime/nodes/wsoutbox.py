"""Writing response bodies to WebSocket clients: encode once, write once per loop turn.

``emit("response", ...)`` never waits. Frames for a client are gathered while the event
loop runs the current batch of handlers, then written with one ``transport.write`` per
client when the loop turns (``call_soon``): a client that is sent three messages during
one turn costs one system call, not three. Order is kept: frames go out in the order
they were emitted, and nothing is written once the websockets library has started the
closing handshake.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from lolo_runtime.nodes.wsframes import OP_TEXT, FrameCache, payload_of

log = logging.getLogger("lolo.websocket")


class Addressee(Protocol):
    """What the outbox needs of a session."""

    conn: ServerConnection
    session_id: str
    outgoing: list[bytes] | None
    closing: bool


class Outbox:
    """One per trigger: buffers frames per session until the loop turns."""

    def __init__(self, max_buffer_bytes: int, on_slow_reader: Callable[[Any], None]):
        self.max_buffer_bytes = max_buffer_bytes
        self.on_slow_reader = on_slow_reader
        self._frames = FrameCache()
        self._waiting: list[Addressee] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, session: Addressee, body: Any) -> None:
        conn = session.conn
        protocol = conn.protocol
        if protocol.state is not State.OPEN or conn.send_in_progress is not None:
            return
        if protocol.extensions:
            # A negotiated extension (compression) makes frames differ per connection.
            opcode, payload = payload_of(body)
            if opcode == OP_TEXT:
                protocol.send_text(payload)
            else:
                protocol.send_binary(payload)
            conn.send_data()
            self._check_buffer(session)
            return
        frame = self._frames.frame(body)
        outgoing = session.outgoing
        if outgoing is not None:
            outgoing.append(frame)
            return
        session.outgoing = [frame]
        if not self._waiting:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)
        self._waiting.append(session)

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for session in waiting:
            frames, session.outgoing = session.outgoing, None
            conn = session.conn
            if not frames or conn.protocol.state is not State.OPEN:
                continue  # closing: what was queued is dropped with the connection
            conn.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            self._check_buffer(session)

    def _check_buffer(self, session: Addressee) -> None:
        # The transport buffers whatever the client does not read; bound it.
        if (
            session.conn.transport.get_write_buffer_size() > self.max_buffer_bytes
            and not session.closing
        ):
            session.closing = True
            self.on_slow_reader(session)
