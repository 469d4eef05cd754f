"""One write per connection per loop turn.

A fan-out queues a frame on every recipient while handlers run; when the event loop
turns, each connection writes what it was given with one ``transport.write``. Under load
a turn handles several incoming messages, so a client sent several of them costs one
system call, not several.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    def flush_frames(self) -> None: ...


class WriteBatcher:
    """Calls ``flush_frames`` of each connection added, once, when the loop turns."""

    def __init__(self) -> None:
        self._waiting: list[Flushable] = []

    def add(self, conn: Flushable) -> None:
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self._flush)
        self._waiting.append(conn)

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for conn in waiting:
            conn.flush_frames()
