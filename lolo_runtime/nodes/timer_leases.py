"""What ``lolo/timer-trigger`` keeps in the state store, so that an app of many processes
(``--redis``, or several processes on one SQLite file) behaves like one.

Everything lives in the reserved app namespace ``__lolo_timers__`` (apps cannot be named
so), under keys that start with ``<app>/<node id>/`` (neither may hold a ``/``):

* ``tick/<app>/<node>/<unix seconds>``: the lease of one tick. Every process that sees the
  tick due races to :meth:`~lolo_runtime.state.AppState.claim` it; the one that wins fires
  it. A process claims a tick within ``LATE_LIMIT`` of its time (later, it is not fired
  but caught up, which checks ``last``), so a lease kept ``TICK_LEASE_TTL`` seconds, well
  past that, is never taken a second time.
* ``busy/<app>/<node>``: held while a chain of the timer runs (``allow_overlap: false``),
  renewed every third of ``BUSY_TTL``, given back with ``release`` (so only by the process
  whose mark it is); a process that dies mid-chain frees it when it lapses.
* ``last/<app>/<node>``: the latest tick handled (``catch_up: latest`` only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from lolo_runtime.state import StateBackend, StateError

TIMERS_APP = "__lolo_timers__"

LATE_LIMIT = 60.0
"""A tick noticed later than this after its time (a suspended machine, a frozen loop) is
not fired as usual; ``catch_up: latest`` fires it as a catch-up instead."""

TICK_LEASE_TTL = 600.0
"""How long a tick's lease is kept: the latest claim (``LATE_LIMIT``) plus room for clocks
that disagree by minutes."""

BUSY_TTL = 30.0
"""How long the busy mark outlives a process that stopped renewing it."""

log = logging.getLogger("lolo.timer")


class TimerLeases:
    """One timer node's records in the store: tick leases, the busy mark, the last tick."""

    def __init__(
        self, backend: StateBackend, app: str, node_id: str, busy_ttl: float = BUSY_TTL
    ) -> None:
        self._state = backend.for_app(TIMERS_APP)
        self._name = f"{app}/{node_id}"
        self._tags = {"app": app, "node": node_id}
        self.busy_ttl = busy_ttl
        # Written into each lease: which process fired a tick, for whoever looks.
        self.holder = f"{socket.gethostname()}:{os.getpid()}"

    async def claim_tick(self, scheduled: float) -> bool:
        """Whether this process is the one to fire the tick due at ``scheduled``."""
        return await self._state.claim(
            f"tick/{self._name}/{scheduled:.0f}", TICK_LEASE_TTL, {"by": self.holder}
        )

    async def last_handled(self) -> float | None:
        """The latest tick remembered by :meth:`remember`, if any."""
        value = await self._state.get(f"last/{self._name}")
        return float(value) if isinstance(value, int | float) else None

    async def remember(self, scheduled: float) -> None:
        await self._state.set(f"last/{self._name}", scheduled)

    async def claim_busy(self, scheduled: float) -> bool:
        """Mark the timer busy (its chain for ``scheduled`` is about to run), unless a
        chain of it is running already, in this process or another."""
        return await self._state.claim(f"busy/{self._name}", self.busy_ttl, self._busy(scheduled))

    @contextlib.asynccontextmanager
    async def holding_busy(self, scheduled: float) -> AsyncIterator[None]:
        """Keep the busy mark (taken by :meth:`claim_busy`) while the body runs; free it
        after."""
        renewer = asyncio.get_running_loop().create_task(self._renew(scheduled))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                # Only our own mark: had ours lapsed (a process stalled past busy_ttl) and
                # another process's chain taken the timer since, that mark is theirs.
                await self._state.release(f"busy/{self._name}", self._busy(scheduled))
            except StateError as exc:
                log.warning(
                    "could not clear the busy mark (it lapses within %gs): %s",
                    self.busy_ttl,
                    exc,
                    extra=self._tags,
                )

    async def _renew(self, scheduled: float) -> None:
        # Real time, not the timer's clock: this keeps a mark alive, it schedules nothing.
        while True:
            await asyncio.sleep(self.busy_ttl / 3)
            try:
                await self._state.set(
                    f"busy/{self._name}", self._busy(scheduled), ttl=self.busy_ttl
                )
            except StateError as exc:
                log.warning("could not renew the busy mark: %s", exc, extra=self._tags)

    def _busy(self, scheduled: float) -> dict[str, Any]:
        return {"by": self.holder, "tick": scheduled}
