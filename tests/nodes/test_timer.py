"""``lolo/timer-trigger`` in a real :class:`Runtime` with a real SQLite store, on a mocked
clock: no sockets, and days of ticks in a moment. (tests/e2e/test_timer.py runs real
``lolo-run`` processes; tests/nodes/test_timer_schedule.py covers the fire times alone.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lolo_runtime.loader import load_flow
from lolo_runtime.nodes.timer import TimerTrigger
from lolo_runtime.nodes.timer_leases import TIMERS_APP
from lolo_runtime.runtime import Runtime, ServeOptions, StartupError
from lolo_runtime.state import SQLiteBackend
from tests.nodes.timer_support import FakeTime, Recorder, at

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


@dataclass
class App:
    """One process of the app: its runtime, its timer, and what reached the recorder."""

    runtime: Runtime
    timer: TimerTrigger
    recorder: Recorder
    backend: SQLiteBackend

    @property
    def scheduled(self) -> list[str]:
        return [ev["scheduledAt"] for ev in self.recorder.events]


def build(folder: Path, params: str, fake: FakeTime, store: Path | None = None) -> App:
    flow_file = folder / "flow.yaml"
    flow_file.write_text(FLOW.format(params=params))
    flow = load_flow(flow_file)
    timer, recorder = flow.nodes["tick"], flow.nodes["rec"]
    assert isinstance(timer, TimerTrigger) and isinstance(recorder, Recorder)
    timer.clock, timer.sleep = fake.clock, fake.sleep
    backend = SQLiteBackend(store or folder / "state.sqlite3", clock=fake.clock)
    return App(Runtime(flow, ServeOptions(port=0), state=backend), timer, recorder, backend)


def settled(*apps: App) -> Callable[[], Awaitable[None]]:
    """Wait until every chain the timers started has finished, or waits at its gate:
    virtual time must not outrun the store calls a chain makes (the busy mark)."""

    async def settle() -> None:
        for _ in range(10_000):
            pending = sum(app.runtime.engine.in_background for app in apps)
            if pending <= sum(app.recorder.running for app in apps):
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the timers' chains did not settle")

    return settle


def timer_log(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lolo.timer" and r.levelno == level]


def test_each_tick_carries_its_times_a_fresh_session_and_the_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = FakeTime(at("2024-03-31T00:59:58.5"))  # Berlin springs forward at 01:00 UTC

    async def main() -> App:
        app = build(tmp_path, "{every: 1s, timezone: Europe/Berlin}", fake)
        fake.settle = settled(app)
        await app.runtime.start()
        assert app.runtime.listener is None  # a timer serves no URL: no port is opened
        await fake.run_until(at("2024-03-31T01:00:02.5"))
        await app.runtime.stop()
        return app

    app = asyncio.run(main())
    assert app.scheduled == [
        "2024-03-31T01:59:59+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:00:01+02:00",
        "2024-03-31T03:00:02+02:00",
    ]
    events = app.recorder.events
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
    fake = FakeTime(at("2024-10-26T00:00", "America/New_York"))

    async def main() -> App:
        app = build(tmp_path, "{cron: '30 1 * * *', timezone: America/New_York}", fake)
        fake.settle = settled(app)
        await app.runtime.start()
        await fake.run_until(at("2024-11-05T00:00", "America/New_York"))
        await app.runtime.stop()
        return app

    scheduled = asyncio.run(main()).scheduled
    assert len(scheduled) == 10  # one a day: 01:30 comes twice on 2024-11-03, fires once
    assert scheduled[7:] == [
        "2024-11-02T01:30:00-04:00",
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]


def test_a_tick_while_the_last_chain_runs_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTime(at("2024-05-01T00:00") - 0.5)

    async def main() -> App:
        app = build(tmp_path, "{every: 1s}", fake)
        fake.settle = settled(app)
        app.recorder.gate = asyncio.Event()
        await app.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:02.5"))  # 00, 01, 02: 00 still runs
        assert app.recorder.running == 1
        app.recorder.gate.set()
        await fake.run_until(at("2024-05-01T00:00:04.5"))  # 03, 04 find it done
        await app.runtime.stop()
        return app

    app = asyncio.run(main())
    assert [t[17:19] for t in app.scheduled] == ["00", "03", "04"]
    assert app.recorder.most_running == 1
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
    fake = FakeTime(at("2024-05-01T00:00") - 0.5)

    async def main() -> App:
        app = build(tmp_path, "{every: 1s, allow_overlap: true}", fake)
        fake.settle = settled(app)
        app.recorder.gate = asyncio.Event()
        await app.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:02.5"))
        app.recorder.gate.set()
        await app.runtime.stop()
        return app

    app = asyncio.run(main())
    assert len(app.scheduled) == 3
    assert app.recorder.most_running == 3
    assert timer_log(caplog) == []


def test_a_failing_chain_and_an_emit_do_not_stop_the_timer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTime(at("2024-05-01T00:00") - 0.5)

    async def main() -> App:
        app = build(tmp_path, "{every: 1s}", fake)
        fake.settle = settled(app)
        app.recorder.fail = True
        await app.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:02.5"))
        await app.runtime.stop()
        return app

    assert len(asyncio.run(main()).scheduled) == 3
    failures = [r for r in caplog.records if r.name == "lolo.engine" and r.levelno >= logging.ERROR]
    assert len(failures) == 3  # logged by the engine, each time; the next tick came anyway


def run_twice(
    tmp_path: Path, params: str, down_for: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the app from 00:00:00 to its tick of 00:00:20 (every 10 s), stop it for
    ``down_for`` seconds, run it again for 20 s; what each run's recorder got."""
    fake = FakeTime(at("2024-05-01T00:00") - 0.5)

    async def main() -> tuple[App, App]:
        first = build(tmp_path, params, fake)
        fake.settle = settled(first)
        await first.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:25"))
        await first.runtime.stop()
        fake.jump(down_for)
        second = build(tmp_path, params, fake)
        fake.settle = settled(second)
        await second.runtime.start()
        await fake.run_until(fake.now + 20)
        await second.runtime.stop()
        return first, second

    first, second = asyncio.run(main())
    return first.recorder.events, second.recorder.events


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
    fake = FakeTime(at("2024-05-01T00:00") - 0.5)

    async def main() -> App:
        app = build(tmp_path, f"{{every: 5m, catch_up: {catch_up}}}", fake)
        fake.settle = settled(app)
        await app.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:05"))
        fake.jump(720)  # suspended from 00:00:00 (mid-nap) to 00:12:00; awake at 00:12:30
        await fake.run_until(at("2024-05-01T00:20:05"))
        await app.runtime.stop()
        return app

    app = asyncio.run(main())
    fired = [(ev["scheduledAt"][11:16], ev["catchUp"]) for ev in app.recorder.events]
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
    """Two runtimes (two SQLite connections on one file) stand for two processes: they
    race for every tick, and each tick reaches exactly one of them."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    store = tmp_path / "shared.sqlite3"
    fake = FakeTime(at("2024-05-01T00:00") - 0.5, sleepers=2)

    async def main() -> tuple[App, App]:
        one = build(tmp_path / "a", "{every: 1s}", fake, store)
        two = build(tmp_path / "b", "{every: 1s}", fake, store)
        fake.settle = settled(one, two)
        await one.runtime.start()
        await two.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:59.5"))
        await one.runtime.stop()
        await two.runtime.stop()
        return one, two

    one, two = asyncio.run(main())
    fired = sorted(one.scheduled + two.scheduled)
    assert fired == [f"2024-05-01T00:00:{second:02d}+00:00" for second in range(60)]


def test_the_leases_live_in_the_reserved_namespace(tmp_path: Path) -> None:
    fake = FakeTime(at("2024-05-01T00:00") - 0.5)

    async def main() -> list[str]:
        app = build(tmp_path, "{every: 1s, catch_up: latest}", fake)
        fake.settle = settled(app)
        await app.runtime.start()
        await fake.run_until(at("2024-05-01T00:00:01.5"))
        keys = await app.backend.for_app(TIMERS_APP).keys()
        assert await app.backend.for_app("clockwork").keys() == []  # the app's own: untouched
        await app.runtime.stop()
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
