"""A clock that tests move by hand: timers sleep on it and ``ctx.state`` ttls read it.

``run_flow(..., clock="2026-03-29T00:30:00+01:00")`` puts one under a flow (see
:mod:`lolo_runtime.testing`); then ``await app.clock.advance(3600)`` runs every tick due in
that hour, in order, each tick's chain to its end before time moves past it, and takes
the time the store judges ttls by along. A day of ticks takes a moment.

Two readings, as on a real machine: :meth:`TestClock.time` is the wall clock, which
:meth:`TestClock.jump` moves without waking anyone (a suspended laptop, an NTP step);
sleeps count on a steady clock underneath, which only :meth:`TestClock.advance` moves.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime

__all__ = ["TestClock", "parse_start"]

SETTLE_POLL = 0.001
"""How often (in real seconds) :meth:`TestClock.advance` looks whether the chains a tick
started have ended: they may wait on real I/O, such as the state store's thread."""


class TestClock:
    """Virtual time for timers (``clock`` and ``sleep``) and for the state store."""

    __test__ = False  # a helper for tests, not a test class for pytest to collect

    def __init__(self, start: float) -> None:
        self._steady = 0.0
        self._offset = start
        self._wakes: list[tuple[float, int, asyncio.Future[None], asyncio.Task[object] | None]] = []
        self._order = itertools.count()
        self._sleepers: set[asyncio.Task[object]] = set()
        self._ended = 0
        self._timers = 0
        self._busy: Callable[[], int] = lambda: 0

    def time(self) -> float:
        """The wall clock, in Unix seconds (what ``time.time`` would say)."""
        return self._steady + self._offset

    @property
    def now(self) -> datetime:
        """The wall clock as an aware UTC datetime, for messages and assertions."""
        from datetime import UTC

        return datetime.fromtimestamp(self.time(), UTC)

    def attach(self, timers: int, busy: Callable[[], int]) -> None:
        """Tell the clock how many timers sleep on it and how to count the chains still
        running (``engine.in_background``): :meth:`advance` moves on when every timer
        sleeps again and nothing runs. :func:`~lolo_runtime.testing.run_flow` does this."""
        self._timers = timers
        self._busy = busy

    def jump(self, seconds: float) -> None:
        """Move the wall clock only, as a resumed laptop or an NTP step does: sleepers are
        not woken, and notice when they next wake (timers then skip or catch up)."""
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` in virtual time: returns once :meth:`advance` passes it."""
        task = asyncio.current_task()
        if task is not None and task not in self._sleepers:
            self._sleepers.add(task)
            task.add_done_callback(self._sleeper_ended)
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._steady + max(seconds, 0.0), next(self._order), wake, task)
        heapq.heappush(self._wakes, entry)
        try:
            await wake
        except asyncio.CancelledError:
            if entry in self._wakes:
                self._wakes.remove(entry)
                heapq.heapify(self._wakes)
            raise

    async def advance(self, seconds: float, timeout: float = 30.0) -> None:
        """Let ``seconds`` of virtual time pass. Each sleeper due meanwhile wakes at its
        time, in order, and the chains it starts run to their end (or ``timeout`` real
        seconds pass: :class:`TimeoutError`) before time moves on."""
        if seconds < 0:
            raise ValueError(
                f"time only moves forward, not advance({seconds:g}); "
                "jump() sets the wall clock back"
            )
        target = self._steady + seconds
        try:
            async with asyncio.timeout(timeout):
                await self._run_until(target)
        except TimeoutError:
            raise TimeoutError(
                f"advance({seconds:g}): after {timeout:g}s the chains started by the timers "
                f"had not finished ({self._busy()} still running) or a timer had not gone "
                "back to sleep; a handler waiting for something that never comes?"
            ) from None

    async def advance_to(self, when: float | str | datetime, timeout: float = 30.0) -> None:
        """:meth:`advance` until the wall clock reads ``when`` (Unix seconds, an aware
        datetime, or ISO 8601 text with an offset)."""
        target = parse_start(when)
        if target < self.time():
            raise ValueError(f"{self.now.isoformat()} is already past {when}")
        await self.advance(target - self.time(), timeout)

    async def _run_until(self, target: float) -> None:
        await self._settle()
        while self._wakes and self._wakes[0][0] <= target:
            when, _, wake, _ = heapq.heappop(self._wakes)
            self._steady = max(self._steady, when)
            if not wake.done():
                wake.set_result(None)
            await self._settle()
        self._steady = max(self._steady, target)

    async def _settle(self) -> None:
        """Wait until every live timer sleeps again and no chain runs."""
        while True:
            for _ in range(3):  # let woken tasks run up to their next await
                await asyncio.sleep(0)
            asleep = {task for _, _, wake, task in self._wakes if not wake.done()}
            if len(asleep) >= self._timers - self._ended and not self._busy():
                return
            await asyncio.sleep(SETTLE_POLL)

    def _sleeper_ended(self, task: asyncio.Task[object]) -> None:
        self._sleepers.discard(task)
        self._ended += 1


def parse_start(when: float | str | datetime) -> float:
    """Unix seconds from a number, an aware datetime or ISO 8601 text with an offset."""
    if isinstance(when, int | float):
        return float(when)
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {when!r}") from None
    if when.tzinfo is None:
        raise ValueError(
            f"{when.isoformat()} has no UTC offset; say which time it is, e.g. "
            f"'{when.isoformat()}+00:00'"
        )
    return when.timestamp()
