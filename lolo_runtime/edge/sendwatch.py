"""Backpressure judged by progress: is a client over its cap still taking data?

A client may leave up to ``max_send_buffer_bytes`` unread. Past that the transport calls
``pause_writing`` and :class:`SendWatch` starts looking, four times per
``send_stall_timeout`` window, at what the client still has to take (our buffer plus the
kernel's send queue, see ``sendqueue.py``). Progress is what the client took since the
last look, counting what was queued for it meanwhile; a client that takes nothing for a
whole window is stuck. A client that falls more than four caps behind the largest frame
it was sent is stuck at once, so memory stays bounded whatever the traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lolo_runtime.edge.sendqueue import kernel_unsent
from lolo_runtime.edge.types import WebSocketSettings

CEILING_CAPS = 4
"""How many caps beyond its largest frame a client may fall behind."""


class SendWatch:
    """Watches one connection's unsent bytes; calls ``on_stuck(reason)`` at most once."""

    __slots__ = (
        "_fd",
        "_mark",
        "_mark_queued",
        "_on_stuck",
        "_progress_at",
        "_timer",
        "_transport",
        "largest_frame",
        "over_cap",
        "queued",
        "settings",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        fd: int | None,
        settings: WebSocketSettings,
        on_stuck: Callable[[str], None],
    ):
        self._transport = transport
        self._fd = fd
        self.settings = settings
        self._on_stuck = on_stuck
        self.queued = 0
        """Bytes ever handed to the transport."""
        self.largest_frame = 0
        self.over_cap = False
        self._timer: asyncio.TimerHandle | None = None
        self._mark = 0  # unsent bytes at the last look
        self._mark_queued = 0  # self.queued then
        self._progress_at = 0.0  # loop time the client was last seen taking data

    def sent(self, size: int) -> None:
        """``size`` bytes were written to the transport."""
        self.queued += size
        if self.over_cap:
            self.check_ceiling()

    def frame(self, size: int) -> None:
        """A frame of ``size`` bytes is on its way (frames may be any size)."""
        if size > self.largest_frame:
            self.largest_frame = size

    def paused(self) -> None:
        """The transport passed the cap (its ``pause_writing``)."""
        self.over_cap = True
        loop = asyncio.get_running_loop()
        self._progress_at = loop.time()
        self._look_later(self.unsent())
        self.check_ceiling()

    def resumed(self) -> None:
        """Back under the cap (``resume_writing``)."""
        self.over_cap = False
        self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def unsent(self) -> int:
        """Bytes the client has not taken yet: our buffer and the kernel's send queue."""
        return self._transport.get_write_buffer_size() + kernel_unsent(self._fd)

    def _look_later(self, unsent: int) -> None:
        self._mark, self._mark_queued = unsent, self.queued
        # Four looks a window: a client's kernel taking its fill just after the pause
        # counts as progress only until a quarter window later, not a whole one.
        self._timer = asyncio.get_running_loop().call_later(
            self.settings.send_stall_timeout / 4, self._look
        )

    def _look(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        size = self.unsent()
        # Progress is what the client took, not whether the backlog shrank: frames queued
        # meanwhile may outweigh what a client that does read took.
        if self._mark + (self.queued - self._mark_queued) - size > 0:
            self._progress_at = now
        if now - self._progress_at < self.settings.send_stall_timeout:
            self._look_later(size)
            return
        self._on_stuck(
            f"it took nothing of its {size} unsent bytes in {self.settings.send_stall_timeout:g}s"
        )

    def check_ceiling(self) -> None:
        """Stuck at once if the client fell more than the ceiling behind."""
        size = self._transport.get_write_buffer_size()
        ceiling = CEILING_CAPS * self.settings.max_send_buffer_bytes + self.largest_frame
        if size > ceiling:
            self.stop()
            self._on_stuck(
                f"{size} bytes unsent, more than {CEILING_CAPS} caps beyond its largest frame"
            )
