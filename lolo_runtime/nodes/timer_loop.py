"""The thin asyncio layer under ``lolo/timer-trigger``: sleep until a schedule's next tick.

All the arithmetic of fire times is in :mod:`lolo_runtime.schedule`; this only sleeps and
tells its owner which tick is due. The clock and the sleep are injected, so tests drive
it through days of daylight-saving changes in a moment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lolo_runtime.schedule import Schedule

Clock = Callable[[], float]
"""Wall-clock time in Unix seconds (``time.time``)."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep``, or a test's stand-in."""

MAX_NAP = 30.0
"""Longest single sleep. asyncio sleeps by the monotonic clock, which does not count time
the machine spent suspended and does not follow a corrected wall clock; waking at least
this often bounds how late a tick is noticed after either."""


@dataclass(frozen=True)
class Due:
    """The tick to handle now."""

    scheduled: float
    """When it was due: the latest tick not after ``now``."""
    now: float
    """When the loop woke for it."""
    passed_over: float | None = None
    """When several ticks fell due at once (the process was suspended or its event loop
    blocked), the first of the earlier ones, which are not handed over."""

    @property
    def lateness(self) -> float:
        return self.now - self.scheduled


class TimerLoop:
    """Hands ``on_due`` each tick of ``schedule`` as it falls due, in order, once each."""

    def __init__(
        self,
        schedule: Schedule,
        on_due: Callable[[Due], Awaitable[None]],
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.schedule = schedule
        self.on_due = on_due
        self.clock = clock
        self.sleep = sleep

    async def run(self, after: float) -> None:
        """Tick from the first fire time after ``after`` until cancelled, or until the
        schedule has no next time. ``on_due`` is awaited: the next tick is not looked at
        before it returns, so it should hand long work to a task of its own."""
        expected = self.schedule.next_after(after)
        while expected is not None:
            now = await self._sleep_until(expected)
            latest = self.schedule.latest_between(expected, now)
            if latest is None:
                await self.on_due(Due(expected, now))
            else:
                await self.on_due(Due(latest, now, passed_over=expected))
                expected = latest
            expected = self.schedule.next_after(expected)

    async def _sleep_until(self, when: float) -> float:
        """Sleep until the wall clock reads ``when`` or later; return its reading."""
        while True:
            now = self.clock()
            if now >= when:
                return now
            # Re-read after each nap: asyncio may wake a hair early, and the wall clock
            # may have been moved meanwhile.
            await self.sleep(min(when - now, MAX_NAP))
