"""Notices when something holds the event loop (a handler calling ``time.sleep`` or a
blocking library), says which node did it and for how long, and keeps count of the time the
loop was stalled, so clients are not blamed for it.

Two parts: a heartbeat on the loop (every :data:`BEAT` seconds it records the time), and a
daemon thread that looks at the heartbeat. When the heartbeat is older than
:data:`STALL_AFTER`, the thread takes the loop thread's current stack
(``sys._current_frames``, documented for this kind of tool) and finds the handler in it by
its code object, before the stall ends and the evidence is gone. When the loop runs again,
the heartbeat logs one warning: node, seconds, and where it was blocked.

Cost: one timer callback per :data:`BEAT` on the loop and a thread that wakes as often;
nothing per event.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from types import CodeType, FrameType

log = logging.getLogger("lolo.watchdog")

BEAT = 0.1
"""Seconds between heartbeats."""
JITTER = 0.05
"""A heartbeat later than this counts as a stall (less is the loop's ordinary delay)."""
STALL_AFTER = 0.5
"""A heartbeat this late means the loop was held: it is reported."""


class LoopWatchdog:
    """Watches one event loop. ``stalled`` is the total time (seconds) the loop was held
    past a heartbeat; readers compare two readings to know how much of an interval was the
    server's own stall."""

    def __init__(
        self,
        handlers: Mapping[CodeType, Iterable[str]] | None = None,
        stall_after: float = STALL_AFTER,
    ) -> None:
        self._handlers: dict[CodeType, list[str]] = {}
        self.set_handlers(handlers or {})
        self.stall_after = stall_after
        self.stalled = 0.0
        self._last_beat = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._timer: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._culprit: str | None = None  # set by the thread during a stall
        self._reported = False

    def stalled_by(self, now: float) -> float:
        """``stalled`` up to ``now`` (``time.monotonic()``), counting a stall that has just
        ended but that no heartbeat has added yet: after a stall the loop runs the I/O
        that queued up meanwhile before the heartbeat's timer, so a reader of ``stalled``
        alone would miss it there."""
        late = now - self._last_beat - BEAT
        return self.stalled + late if late > JITTER else self.stalled

    def set_handlers(self, handlers: Mapping[CodeType, Iterable[str]]) -> None:
        """Look for these handler code objects from now on (``--reload`` swapped nodes)."""
        self._handlers = {code: sorted(set(ids)) for code, ids in handlers.items()}

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last_beat = time.monotonic()
        self._timer = self._loop.call_later(BEAT, self._beat)
        self._thread = threading.Thread(target=self._watch, name="lolo-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    # on the loop

    def _beat(self) -> None:
        now = time.monotonic()
        late = now - self._last_beat - BEAT
        self._last_beat = now
        if late > JITTER:
            self.stalled += late
        if late >= self.stall_after:
            culprit, self._culprit, self._reported = self._culprit, None, False
            log.warning(
                "the event loop was blocked for %.1fs%s: every client waited; "
                "run blocking work with 'await asyncio.to_thread(...)'",
                late,
                f" by {culprit}" if culprit else "",
            )
        assert self._loop is not None
        self._timer = self._loop.call_later(BEAT, self._beat)

    # on the watchdog thread

    def _watch(self) -> None:
        while not self._stop.wait(BEAT):
            if self._reported or time.monotonic() - self._last_beat < self.stall_after:
                continue
            self._reported = True
            frame = sys._current_frames().get(self._loop_thread)
            self._culprit = self._describe(frame)

    def _describe(self, frame: FrameType | None) -> str | None:
        """The node whose handler is on the stack, and the innermost line running."""
        innermost = frame
        while frame is not None:
            ids = self._handlers.get(frame.f_code)
            if ids is not None:
                where = ""
                if innermost is not None:
                    code = innermost.f_code
                    where = f" (at {code.co_filename}:{innermost.f_lineno} in {code.co_name})"
                nodes = ", ".join(repr(node_id) for node_id in ids)
                return f"node {nodes}{where}"
            frame = frame.f_back
        return None
