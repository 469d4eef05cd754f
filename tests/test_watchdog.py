"""The loop watchdog's stall total, read at the moment a stall has just ended."""

from __future__ import annotations

import asyncio
import time

from lolo_runtime.watchdog import LoopWatchdog


def test_a_stall_that_just_ended_counts_before_the_heartbeat_adds_it() -> None:
    """After a stall the loop runs the I/O that queued meanwhile before the heartbeat's
    timer: the rate limiter reads the stall there, so ``stalled_by`` must include it."""

    async def main() -> tuple[float, float, float]:
        watchdog = LoopWatchdog(stall_after=30)  # no warning: only the totals matter here
        watchdog.start()
        try:
            await asyncio.sleep(0.3)  # a few heartbeats on an idle loop
            time.sleep(0.8)  # the loop is held, as by a blocking handler
            before_beat = (watchdog.stalled, watchdog.stalled_by(time.monotonic()))
            await asyncio.sleep(0.3)  # now the heartbeat has run
            return *before_beat, watchdog.stalled
        finally:
            watchdog.stop()

    stalled, stalled_by, after_beat = asyncio.run(main())
    assert stalled < 0.3  # the heartbeat has not seen the stall yet
    assert stalled_by - stalled >= 0.6
    assert abs(after_beat - stalled_by) < 0.15  # the heartbeat adds what was foreseen
