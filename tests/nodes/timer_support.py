"""Helpers of the timer tests: a wall clock that moves only when the timer sleeps, and a
node that records the events a timer sends it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from lolo_runtime.context import Context
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.types import Event


def at(text: str, zone: str = "UTC") -> float:
    """``"2024-03-31T01:59"`` on the wall clock of ``zone`` (first copy if repeated) as a
    Unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


class FakeTime:
    """``clock`` and ``sleep`` for timers, in virtual time: days pass in a moment, and the
    test decides where time stops (:meth:`run_until`).

    Like the real pair, sleeping counts on a monotonic clock and ``clock`` reads the wall
    clock, which :meth:`jump` moves (a suspended machine, NTP) without waking sleepers.
    Time moves only when all ``sleepers`` (the timers under test) are asleep: then the one
    due first wakes, once whatever the timers started has run (``settle``), so a chain
    sees the time of its tick.
    """

    def __init__(
        self,
        start: float,
        sleepers: int = 1,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.monotonic = 0.0
        self.offset = start
        self.until = start
        self.sleepers = sleepers
        self.settle = settle
        self.naps: list[float] = []
        self._wakes: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._waiting = asyncio.Event()

    def clock(self) -> float:
        return self.monotonic + self.offset

    @property
    def now(self) -> float:
        return self.clock()

    def jump(self, seconds: float) -> None:
        """Move the wall clock (only): forward for time spent suspended, back for NTP."""
        self.offset += seconds

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        wake = asyncio.get_running_loop().create_future()
        entry = (self.monotonic + seconds, next(self._order), wake)
        heapq.heappush(self._wakes, entry)
        try:
            if len(self._wakes) >= self.sleepers:
                await self._advance()
            await wake
        except asyncio.CancelledError:
            if entry in self._wakes:
                self._wakes.remove(entry)
                heapq.heapify(self._wakes)
            raise

    async def _advance(self) -> None:
        for _ in range(5):  # what the timers just started runs now, at their time
            await asyncio.sleep(0)
        if self.settle is not None:
            await self.settle()
        if len(self._wakes) < self.sleepers:
            return  # one went away meanwhile; the next to sleep moves time on
        when, _, wake = self._wakes[0]
        if when + self.offset > self.until:
            self._waiting.set()
            return
        heapq.heappop(self._wakes)
        self.monotonic = max(self.monotonic, when)
        wake.set_result(None)

    async def run_until(self, until: float, timeout: float = 20.0) -> None:
        """Let time run up to the wall-clock time ``until``; return once every timer
        sleeps past it."""
        self.until = until
        self._waiting.clear()
        if len(self._wakes) >= self.sleepers:
            await self._advance()
        await asyncio.wait_for(self._waiting.wait(), timeout)


class Recorder(Node):
    """Records every event it gets. A test may hold each chain at ``gate`` (to keep it
    running), or have the chain raise after recording (``fail`` is true)."""

    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.events: list[Event] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.running = 0
        self.most_running = 0

    async def handle(self, ev: Event, ctx: Context) -> None:
        self.events.append(ev)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            ctx.emit("response", {"body": "nobody is listening"})  # a timer drops it
            if self.fail:
                raise RuntimeError("this chain fails on purpose")
        finally:
            self.running -= 1
