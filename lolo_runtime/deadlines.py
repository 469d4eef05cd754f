"""Handler timeouts without a timer per call.

``asyncio.timeout`` arms a timer (a heap push, then a cancel) for every call it guards; on the
chat, guarding its two handler calls per message that way cost about 8% of the CPU (py-spy).
Here a call is entered in a table, and one sweep every :data:`SWEEP` seconds, armed only
while calls are in flight, cancels those past their deadline. A call is cut between its
timeout and its timeout plus :data:`SWEEP`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from lolo_runtime.errors import HandlerTimeout

SWEEP = 0.25
"""Seconds between checks for overdue calls."""


class _Call:
    __slots__ = ("cancelled", "deadline", "task")

    def __init__(self, deadline: float, task: asyncio.Task[Any]) -> None:
        self.deadline = deadline
        self.task = task
        self.cancelled = False


class Deadlines:
    """The deadlines of the handler calls in flight in one event loop."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}
        self._next_id = 0
        self._sweeper: asyncio.TimerHandle | None = None

    async def run(self, seconds: float, call: Awaitable[Any]) -> None:
        """Await ``call``; past ``seconds`` cancel it and raise :class:`HandlerTimeout`.

        A ``CancelledError`` from anywhere else (shutdown) passes through untouched."""
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel with
            await call
            return
        number = self._next_id
        self._next_id += 1
        entry = _Call(time.monotonic() + seconds, task)
        self._calls[number] = entry
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP, self._sweep)
        cancelling = task.cancelling()
        try:
            await call
        except asyncio.CancelledError:
            # Ours, and no other cancellation pending: the call timed out.
            if entry.cancelled and task.uncancel() <= cancelling:
                raise HandlerTimeout(
                    f"handler did not finish within {seconds:g}s (its node's timeout); cancelled"
                ) from None
            raise
        finally:
            del self._calls[number]

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        for entry in list(self._calls.values()):
            if not entry.cancelled and entry.deadline <= now:
                entry.cancelled = True
                entry.task.cancel()
        if self._calls:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP, self._sweep)
