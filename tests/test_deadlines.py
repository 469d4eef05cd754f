"""Handler deadlines: overdue calls are cut by the sweep; other cancellations pass through."""

from __future__ import annotations

import asyncio
import time

import pytest

from lolo_runtime.deadlines import SWEEP, Deadlines
from lolo_runtime.errors import HandlerTimeout


async def forever() -> None:
    await asyncio.Event().wait()


def test_an_overdue_call_is_cut_between_its_timeout_and_one_sweep_later() -> None:
    async def main() -> float:
        deadlines = Deadlines()
        started = time.monotonic()
        with pytest.raises(HandlerTimeout, match=r"within 0\.1s"):
            await deadlines.run(0.1, forever())
        return time.monotonic() - started

    took = asyncio.run(main())
    assert 0.1 <= took <= 0.1 + SWEEP + 0.2


def test_a_call_that_finishes_in_time_returns_and_leaves_nothing_armed() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        await deadlines.run(5, asyncio.sleep(0.01))
        # The task is not cancelled later by a stale entry.
        await asyncio.sleep(SWEEP * 2)
        assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]

    asyncio.run(main())


def test_many_calls_each_get_their_own_deadline() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines()

        async def one(seconds: float, work: float) -> str:
            try:
                await deadlines.run(seconds, asyncio.sleep(work))
            except HandlerTimeout:
                return "cut"
            return "done"

        return list(await asyncio.gather(one(0.1, 5), one(5, 0.05), one(0.2, 5), one(5, 0.3)))

    assert asyncio.run(main()) == ["cut", "done", "cut", "done"]


def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        task = asyncio.ensure_future(deadlines.run(10, forever()))
        await asyncio.sleep(0.05)
        task.cancel()  # shutdown, say
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_the_handlers_own_timeout_error_passes_through() -> None:
    async def main() -> None:
        async def raises() -> None:
            raise TimeoutError("mine")

        with pytest.raises(TimeoutError, match="mine"):
            await Deadlines().run(10, raises())

    asyncio.run(main())
