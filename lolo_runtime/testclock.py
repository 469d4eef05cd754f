"""A clock that tests move by hand: timers sleep on it and ``ctx.state`` ttls read it.

``run_flow(..., clock="2026-03-29T00:30:00+01:00")`` puts one under a flow (see
:mod:`lolo_runtime.testing`); then ``await app.clock.advance(3600)`` runs every tick due in
that hour, in order, each tick's chain to its end before time moves past it, and takes
the time the store judges ttls by along. A day of ticks takes a moment.

Two readings, as on a real machine: :meth:`TestClock.time` is the wall clock, which
:meth:`TestClock.jump` moves without waking anyone (a suspended laptop, an NTP step);
sleeps count on a steady clock underneath, which only :meth:`TestClock.advance` moves.

Several apps may share one clock (``run_flow(..., clock=TestClock(start))`` for each):
each is attached with its timers and chains (:meth:`TestClock.attach`), and ``advance``
waits for them all.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

__all__ = ["ClockUser", "TestClock", "parse_start"]

SPIN_TURNS = 5
"""Turns of the event loop :meth:`TestClock.advance` gives woken tasks before it polls."""

SETTLE_POLL = 0.001
"""How often (in real seconds) :meth:`TestClock.advance` looks whether the chains a tick
started have ended: they may wait on real I/O, such as the state store's thread."""

Sleep = Callable[[float], Awaitable[None]]


class _Timer:
    """One registered sleeper (a timer's loop): where it stands, for :meth:`_settle`."""

    __slots__ = ("asleep", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[object] | None = None
        self.asleep = False

    @property
    def settled(self) -> bool:
        """Asleep again, or gone (its task ended: stopped, or failed)."""
        return self.asleep or (self.task is not None and self.task.done())


class ClockUser:
    """One app (or one loop) on a :class:`TestClock`, from :meth:`TestClock.attach`: the
    timers that sleep on the clock for it, and how to count its running chains."""

    def __init__(self, clock: TestClock, busy: Callable[[], int]) -> None:
        self._clock = clock
        self.busy = busy
        self.timers: list[_Timer] = []

    def sleeper(self) -> Sleep:
        """A ``sleep`` for one timer (``timer.sleep``, or a ``TimerLoop``'s): after each
        wake, :meth:`TestClock.advance` waits until this timer sleeps again, or ends,
        before time moves on."""
        timer = _Timer()
        self.timers.append(timer)

        async def sleep(seconds: float) -> None:
            timer.task = asyncio.current_task()
            timer.asleep = True
            try:
                await self._clock.sleep(seconds)
            finally:
                timer.asleep = False

        return sleep

    def detach(self) -> None:
        """Take this user off the clock (its app stopped): ``advance`` no longer waits
        for its timers or chains."""
        if self in self._clock._users:
            self._clock._users.remove(self)


class TestClock:
    """Virtual time for timers (``clock`` and ``sleep``) and for the state store.

    One clock may drive several apps (``run_flow(..., clock=the_clock)`` for each, e.g.
    two processes of one app on one state file): each app is attached (:meth:`attach`)
    with its timers and its chains, and :meth:`advance` waits for all of them."""

    __test__ = False  # a helper for tests, not a test class for pytest to collect

    def __init__(self, start: float | str | datetime) -> None:
        self._steady = 0.0
        self._offset = parse_start(start)
        self._wakes: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._users: list[ClockUser] = []

    def time(self) -> float:
        """The wall clock, in Unix seconds (what ``time.time`` would say)."""
        return self._steady + self._offset

    @property
    def now(self) -> datetime:
        """The wall clock as an aware UTC datetime, for messages and assertions."""
        return datetime.fromtimestamp(self.time(), UTC)

    def attach(self, busy: Callable[[], int] = lambda: 0) -> ClockUser:
        """Add a user of the clock (an app): its timers sleep with a
        :meth:`ClockUser.sleeper` each, and ``busy`` counts its chains still running
        (``engine.in_background``). :meth:`advance` moves on when every user's timers
        sleep again and no chain runs. :func:`~lolo_runtime.testing.run_flow` attaches
        its app, and detaches it when the app stops."""
        user = ClockUser(self, busy)
        self._users.append(user)
        return user

    def jump(self, seconds: float) -> None:
        """Move the wall clock only, as a resumed laptop or an NTP step does: sleepers are
        not woken, and notice when they next wake (timers then skip or catch up)."""
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` in virtual time: returns once :meth:`advance` passes it."""
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._steady + max(seconds, 0.0), next(self._order), wake)
        heapq.heappush(self._wakes, entry)
        try:
            await wake
        except asyncio.CancelledError:
            if entry in self._wakes:
                self._wakes.remove(entry)
                heapq.heapify(self._wakes)
            raise

    async def advance(
        self, seconds: float, timeout: float = 30.0, *, wait_for_chains: bool = True
    ) -> None:
        """Let ``seconds`` of virtual time pass. Each sleeper due meanwhile wakes at its
        time, in order, and the chains it starts run to their end (or ``timeout`` real
        seconds pass: :class:`TimeoutError`) before time moves on.

        ``wait_for_chains=False``: wait only for the timers to sleep again (their tick
        claimed and its chain started), not for the chains to end; for chains a test
        holds on purpose (at a gate it opens later)."""
        if seconds < 0:
            raise ValueError(
                f"time only moves forward, not advance({seconds:g}); "
                "jump() sets the wall clock back"
            )
        target = self._steady + seconds
        try:
            async with asyncio.timeout(timeout):
                await self._run_until(target, wait_for_chains)
        except TimeoutError:
            waking = sum(not timer.settled for user in self._users for timer in user.timers)
            raise TimeoutError(
                f"advance({seconds:g}): after {timeout:g}s {self._running()} chain(s) started "
                f"by the timers still ran and {waking} timer(s) had not gone back to sleep; "
                "a handler waiting for something that never comes?"
            ) from None

    async def advance_to(
        self, when: float | str | datetime, timeout: float = 30.0, *, wait_for_chains: bool = True
    ) -> None:
        """:meth:`advance` until the wall clock reads ``when`` (Unix seconds, an aware
        datetime, or ISO 8601 text with an offset)."""
        target = parse_start(when)
        if target < self.time():
            raise ValueError(f"{self.now.isoformat()} is already past {when}")
        await self.advance(target - self.time(), timeout, wait_for_chains=wait_for_chains)

    async def _run_until(self, target: float, wait_for_chains: bool) -> None:
        await self._settle(wait_for_chains)
        while self._wakes and self._wakes[0][0] <= target:
            # Everyone due at the same instant wakes together, as on a real event loop:
            # two timers of one time race as they would in production.
            when = self._wakes[0][0]
            self._steady = max(self._steady, when)
            while self._wakes and self._wakes[0][0] == when:
                wake = heapq.heappop(self._wakes)[2]
                if not wake.done():
                    wake.set_result(None)
            await self._settle(wait_for_chains)
        self._steady = max(self._steady, target)

    def _running(self) -> int:
        return sum(user.busy() for user in self._users)

    async def _settle(self, wait_for_chains: bool) -> None:
        """Wait until every timer sleeps again (or has ended) and, if asked, no chain
        runs."""
        turns = 0
        while True:
            # One turn of the loop lets woken tasks run up to their next await; most go
            # straight back to sleep (a long wait is slept in naps). Work that waits on
            # something outside the loop (the store's thread) is polled for instead.
            await asyncio.sleep(0 if turns < SPIN_TURNS else SETTLE_POLL)
            turns += 1
            timers = all(timer.settled for user in self._users for timer in user.timers)
            if timers and not (wait_for_chains and self._running()):
                return


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
