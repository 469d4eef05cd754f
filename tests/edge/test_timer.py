"""``edge/timer.py``: the lazily re-armed timer, on a real event loop with short delays."""

from __future__ import annotations

import asyncio

from lolo_runtime.edge.timer import LazyTimer


def test_it_fires_once_at_the_last_deadline_armed() -> None:
    async def scenario() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        timer = LazyTimer(loop)
        start = loop.time()
        timer.arm(0.02, lambda: fired.append("first"))
        timer.arm(0.08, lambda: fired.append("second"))  # later: the handle re-arms itself
        while not fired:
            await asyncio.sleep(0.005)
        took = loop.time() - start
        await asyncio.sleep(0.1)
        return fired, took

    fired, took = asyncio.run(scenario())
    assert fired == ["second"]
    assert took >= 0.08


def test_an_earlier_deadline_is_kept_and_disarm_or_close_stops_it() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        timer = LazyTimer(loop)
        timer.arm(1.0, lambda: fired.append("late"))
        timer.arm(0.01, lambda: fired.append("early"))  # earlier: a new handle
        await asyncio.sleep(0.05)
        assert timer.armed is False
        timer.arm(0.01, lambda: fired.append("disarmed"))
        timer.disarm()
        other = LazyTimer(loop)
        other.arm(0.01, lambda: fired.append("closed"))
        other.close()
        await asyncio.sleep(0.05)
        return fired

    assert asyncio.run(scenario()) == ["early"]
