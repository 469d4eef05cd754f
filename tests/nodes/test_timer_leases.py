"""The timer's busy mark across two processes sharing one SQLite file: each gives back
only its own mark."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lolo_runtime.nodes.timer_leases import BUSY_TTL, TIMERS_APP, TimerLeases
from lolo_runtime.state import SQLiteBackend
from tests.state.test_contract import FakeClock


def test_a_process_whose_mark_lapsed_does_not_free_the_next_ones(tmp_path: Path) -> None:
    """Process A's chain outlives its mark (its loop stalled past BUSY_TTL, so it could not
    renew); B takes the timer meanwhile. When A's chain ends at last, B's mark must stay:
    freeing it would let a third chain start beside B's."""

    async def main() -> object:
        clock = FakeClock()
        store = tmp_path / "state.sqlite3"
        async with (
            SQLiteBackend(store, clock=clock) as one,
            SQLiteBackend(store, clock=clock) as two,
        ):
            a = TimerLeases(one, "app", "tick")
            b = TimerLeases(two, "app", "tick")
            a.holder, b.holder = "host:1", "host:2"
            assert await a.claim_busy(100.0) is True
            async with a.holding_busy(100.0):
                clock.advance(BUSY_TTL)  # A's mark lapses unrenewed
                assert await b.claim_busy(130.0) is True
                assert await a.claim_busy(131.0) is False  # B's chain is running
            # A's chain has ended: B's mark is still there, so a next tick is skipped.
            assert await a.claim_busy(132.0) is False
            async with b.holding_busy(130.0):
                pass
            assert await a.claim_busy(133.0) is True  # B gave its own mark back
            return await one.for_app(TIMERS_APP).get("busy/app/tick")

    assert asyncio.run(main()) == {"by": "host:1", "tick": 133.0}
