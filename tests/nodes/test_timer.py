"""``lolo/timer-trigger`` in a flow run in-process (:func:`lolo_runtime.testing.run_flow`)
with a real SQLite store, on a :class:`~lolo_runtime.testing.TestClock`: days of ticks in a
moment. (tests/e2e/test_timer.py runs real ``lolo-run`` processes;
tests/nodes/test_timer_schedule.py covers the fire times alone.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lolo_runtime.loader import load_flow
from lolo_runtime.nodes.timer import TimerTrigger
from lolo_runtime.nodes.timer_leases import TIMERS_APP
from lolo_runtime.runtime import Runtime, ServeOptions, StartupError
from lolo_runtime.testing import LoloApp, TestClock, run_flow
from tests.nodes.timer_support import Recorder, at

FLOW = """\
app: clockwork
nodes:
  - id: tick
    type: lolo/timer-trigger
    params: {params}
  - id: rec
    type: tests.nodes.timer_support:Recorder
edges:
  - tick.out -> rec.in
"""


def write_flow(folder: Path, params: str) -> Path:
    folder.mkdir(exist_ok=True)
    flow_file = folder / "flow.yaml"
    flow_file.write_text(FLOW.format(params=params))
    return flow_file


def recorder(app: LoloApp) -> Recorder:
    node = app.flow.nodes["rec"]
    assert isinstance(node, Recorder) and isinstance(app.flow.nodes["tick"], TimerTrigger)
    return node


def scheduled(rec: Recorder) -> list[str]:
    return [ev["scheduledAt"] for ev in rec.events]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (in real time) until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def parked(app: LoloApp, rec: Recorder) -> int:
    """Wait until every chain the timer started has ended or waits at the recorder's
    gate (they get there on their own time: ``advance(..., wait_for_chains=False)`` does
    not wait for them); how many wait."""
    await until(lambda: app.runtime.engine.in_background == rec.running)
    return rec.running


def timer_log(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lolo.timer" and r.levelno == level]


def test_each_tick_carries_its_times_a_fresh_session_and_the_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    start = at("2024-03-31T00:59:58.5")  # Berlin springs forward at 01:00 UTC
    flow = write_flow(tmp_path, "{every: 1s, timezone: Europe/Berlin}")

    async def main() -> Recorder:
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            assert app.runtime.listener is None  # a timer serves no URL: no port is opened
            await app.clock.advance_to(at("2024-03-31T01:00:02.5"))
            return recorder(app)

    rec = asyncio.run(main())
    assert scheduled(rec) == [
        "2024-03-31T01:59:59+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:00:01+02:00",
        "2024-03-31T03:00:02+02:00",
    ]
    events = rec.events
    assert [ev["firedAt"] for ev in events] == [
        f"{ev['scheduledAt'][:19]}.000{ev['scheduledAt'][19:]}" for ev in events
    ]
    assert {ev["nodeId"] for ev in events} == {"tick"}
    assert {ev["catchUp"] for ev in events} == {False}
    assert len({ev["sessionId"] for ev in events}) == 4
    assert timer_log(caplog, logging.INFO)[0] == (
        "timer: every 1s; next fires at 2024-03-31T01:59:59+01:00, "
        "2024-03-31T03:00:00+02:00, 2024-03-31T03:00:01+02:00"
    )


def test_a_daily_cron_job_through_the_runtime_across_fall_back(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "{cron: '30 1 * * *', timezone: America/New_York}")
    start = at("2024-10-26T00:00", "America/New_York")

    async def main() -> Recorder:
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            await app.clock.advance_to(at("2024-11-05T00:00", "America/New_York"))
            return recorder(app)

    fired = scheduled(asyncio.run(main()))
    assert len(fired) == 10  # one a day: 01:30 comes twice on 2024-11-03, fires once
    assert fired[7:] == [
        "2024-11-02T01:30:00-04:00",
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]


def test_a_tick_while_the_last_chain_runs_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flow = write_flow(tmp_path, "{every: 1s}")

    async def main() -> Recorder:
        start = at("2024-05-01T00:00") - 0.5
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            rec = recorder(app)
            rec.gate = asyncio.Event()
            # 00, 01, 02: 00 still runs (held at the gate, so advance does not wait for it)
            await app.clock.advance_to(at("2024-05-01T00:00:02.5"), wait_for_chains=False)
            assert await parked(app, rec) == 1
            assert len(rec.events) == 1
            rec.gate.set()
            await app.clock.advance_to(at("2024-05-01T00:00:04.5"))  # 03, 04 find it done
            return rec

    rec = asyncio.run(main())
    assert [t[17:19] for t in scheduled(rec)] == ["00", "03", "04"]
    assert rec.most_running == 1
    warnings = timer_log(caplog)
    assert len(warnings) == 2
    assert (
        "the tick of 2024-05-01T00:00:01+00:00 skipped: the previous tick's chain is "
        in (warnings[0])
    )
    assert "(allow_overlap: false)" in warnings[0]


def test_allow_overlap_lets_chains_run_side_by_side(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flow = write_flow(tmp_path, "{every: 1s, allow_overlap: true}")

    async def main() -> Recorder:
        start = at("2024-05-01T00:00") - 0.5
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            rec = recorder(app)
            rec.gate = asyncio.Event()
            await app.clock.advance_to(at("2024-05-01T00:00:02.5"), wait_for_chains=False)
            assert await parked(app, rec) == 3
            rec.gate.set()
            await until(lambda: rec.running == 0)
            return rec

    rec = asyncio.run(main())
    assert len(scheduled(rec)) == 3
    assert rec.most_running == 3
    assert timer_log(caplog) == []


def test_a_failing_chain_and_an_emit_do_not_stop_the_timer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flow = write_flow(tmp_path, "{every: 1s}")

    async def main() -> Recorder:
        start = at("2024-05-01T00:00") - 0.5
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            recorder(app).fail = True
            await app.clock.advance_to(at("2024-05-01T00:00:02.5"))
            return recorder(app)

    assert len(scheduled(asyncio.run(main()))) == 3
    failures = [r for r in caplog.records if r.name == "lolo.engine" and r.levelno >= logging.ERROR]
    assert len(failures) == 3  # logged by the engine, each time; the next tick came anyway


def run_twice(
    tmp_path: Path, params: str, down_for: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the app from 00:00:00 to its tick of 00:00:20 (every 10 s), stop it for
    ``down_for`` seconds, run it again for 20 s; what each run's recorder got."""
    flow = write_flow(tmp_path, params)
    store = tmp_path / "state.sqlite3"
    clock = TestClock(at("2024-05-01T00:00") - 0.5)

    async def main() -> tuple[Recorder, Recorder]:
        async with run_flow(flow, state=store, clock=clock) as first:
            await clock.advance_to(at("2024-05-01T00:00:20"))
        clock.jump(down_for)
        async with run_flow(flow, state=store, clock=clock) as second:
            await clock.advance(20)
        return recorder(first), recorder(second)

    first, second = asyncio.run(main())
    return first.events, second.events


def test_catch_up_latest_fires_the_latest_missed_tick_once_on_start(tmp_path: Path) -> None:
    first, second = run_twice(tmp_path, "{every: 10s, catch_up: latest}", down_for=61)
    assert [ev["scheduledAt"][14:19] for ev in first] == ["00:00", "00:10", "00:20"]
    # The clock stood at 00:00:20 (the last tick) when the app stopped; it starts again at
    # 00:01:21: 00:30 ... 01:20 were missed, and 01:20 alone is caught up, at once.
    catch_up, *regular = second
    assert catch_up["catchUp"] is True
    assert catch_up["scheduledAt"] == "2024-05-01T00:01:20+00:00"
    assert catch_up["firedAt"] == "2024-05-01T00:01:21.000+00:00"
    assert [(ev["scheduledAt"][14:19], ev["catchUp"]) for ev in regular] == [
        ("01:30", False),
        ("01:40", False),
    ]


def test_catch_up_latest_has_nothing_to_do_after_a_short_stop(tmp_path: Path) -> None:
    _, second = run_twice(tmp_path, "{every: 10s, catch_up: latest}", down_for=3)
    assert [(ev["scheduledAt"][14:19], ev["catchUp"]) for ev in second] == [
        ("00:30", False),
        ("00:40", False),
    ]


def test_catch_up_none_fires_no_missed_tick(tmp_path: Path) -> None:
    _, second = run_twice(tmp_path, "{every: 10s}", down_for=61)
    assert [(ev["scheduledAt"][14:19], ev["catchUp"]) for ev in second] == [
        ("01:30", False),
        ("01:40", False),
    ]


@pytest.mark.parametrize("catch_up", ["none", "latest"])
def test_a_tick_noticed_more_than_a_minute_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, catch_up: str
) -> None:
    """The machine slept through ticks and woke well after the latest: that one is fired
    as a catch-up with ``catch_up: latest``, and not at all with ``none``; warnings say
    what was not fired."""
    flow = write_flow(tmp_path, f"{{every: 5m, catch_up: {catch_up}}}")

    async def main() -> Recorder:
        start = at("2024-05-01T00:00") - 0.5
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            await app.clock.advance_to(at("2024-05-01T00:00:05"))
            # Suspended at 00:00:05, in the middle of a nap (00:00:00 to 00:00:30), until
            # 00:12:05; the nap ends, and the timer notices, at 00:12:30.
            app.clock.jump(720)
            await app.clock.advance_to(at("2024-05-01T00:20:05"))
            return recorder(app)

    rec = asyncio.run(main())
    fired = [(ev["scheduledAt"][11:16], ev["catchUp"]) for ev in rec.events]
    late = [("00:10", True)] if catch_up == "latest" else []
    assert fired == [("00:00", False), *late, ("00:15", False), ("00:20", False)]
    warnings = timer_log(caplog)
    assert (
        "ticks from 2024-05-01T00:05:00+00:00 to before 2024-05-01T00:10:00+00:00" in (warnings[0])
    )
    if catch_up == "none":
        assert warnings[1].endswith(
            "the tick of 2024-05-01T00:10:00+00:00 came 150s late; not fired (catch_up: none)"
        )
    else:
        assert len(warnings) == 1


def test_two_processes_on_one_store_fire_each_tick_once(tmp_path: Path) -> None:
    """Two apps run in-process on one clock (two SQLite connections on one file) stand for
    two processes: they race for every tick, and each tick reaches exactly one of them."""
    store = tmp_path / "shared.sqlite3"
    flow_a = write_flow(tmp_path / "a", "{every: 1s}")
    flow_b = write_flow(tmp_path / "b", "{every: 1s}")
    clock = TestClock(at("2024-05-01T00:00") - 0.5)

    async def main() -> tuple[Recorder, Recorder]:
        async with (
            run_flow(flow_a, state=store, clock=clock) as one,
            run_flow(flow_b, state=store, clock=clock) as two,
        ):
            assert one.clock is two.clock
            await clock.advance_to(at("2024-05-01T00:00:59.5"))
            return recorder(one), recorder(two)

    one, two = asyncio.run(main())
    fired = sorted(scheduled(one) + scheduled(two))
    assert fired == [f"2024-05-01T00:00:{second:02d}+00:00" for second in range(60)]


def test_the_leases_live_in_the_reserved_namespace(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "{every: 1s, catch_up: latest}")

    async def main() -> list[str]:
        start = at("2024-05-01T00:00") - 0.5
        async with run_flow(flow, state=tmp_path / "state.sqlite3", clock=start) as app:
            await app.clock.advance_to(at("2024-05-01T00:00:01.5"))
            keys = await app.runtime.engine.backend.for_app(TIMERS_APP).keys()
            assert await app.state.keys() == []  # the app's own: untouched
            return keys

    assert asyncio.run(main()) == [
        "last/clockwork/tick",
        "tick/clockwork/tick/1714521600",
        "tick/clockwork/tick/1714521601",
    ]


def test_without_a_state_store_the_app_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW.format(params="{every: 1s}"))
    runtime = Runtime(load_flow(tmp_path / "flow.yaml"), ServeOptions(port=0))

    async def main() -> None:
        try:
            await runtime.start()
        finally:
            await runtime.stop()

    with pytest.raises(StartupError, match="needs the state store"):
        asyncio.run(main())
