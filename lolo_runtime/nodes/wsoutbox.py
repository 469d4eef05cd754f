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
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from lolo_runtime.nodes.wsframes import OP_TEXT, FrameCache, payload_of


class Addressee(Protocol):
    """What the outbox needs of a session."""

    conn: ServerConnection
    outgoing: list[bytes] | None


class Outbox:
    """One per trigger: buffers frames per session until the loop turns.

    It does not bound what a client leaves unread: the connection's transport does, see
    :class:`lolo_runtime.server.LoloConnection`.
    """

    def __init__(self) -> None:
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
