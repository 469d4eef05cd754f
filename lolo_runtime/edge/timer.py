"""A timer that is cheap to re-arm: arming moves a deadline, not a heap entry.

An HTTP connection arms a timeout for every request (the head must arrive, then the
keep-alive wait). Cancelling and scheduling a ``TimerHandle`` each time costs two heap
operations per request; here the handle stays, and when it fires early (the deadline was
moved later since) it re-arms itself once for the new deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LazyTimer:
    """Calls the armed callback at its deadline, unless disarmed or re-armed first."""

    __slots__ = ("_callback", "_deadline", "_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._callback: Callable[[], None] | None = None

    @property
    def armed(self) -> bool:
        return self._callback is not None

    def arm(self, delay: float, callback: Callable[[], None]) -> None:
        deadline = self._loop.time() + delay
        self._deadline = deadline
        self._callback = callback
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(deadline, self._fire)

    def disarm(self) -> None:
        self._callback = None

    def close(self) -> None:
        """Disarm and drop the handle (the owner is going away)."""
        self._callback = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        callback = self._callback
        if callback is None:
            return
        if self._loop.time() < self._deadline:  # re-armed since: wait for the new deadline
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._callback = None
        callback()
