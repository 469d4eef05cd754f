"""Fire times of ``lolo/timer-trigger``: the pure schedule and the sleeping loop, on a
:class:`~lolo_runtime.testing.TestClock`, across daylight-saving changes in two zones (no
sockets, no store).

The dates: Europe/Berlin springs forward 2024-03-31 02:00 -> 03:00 and falls back
2024-10-27 03:00 -> 02:00; America/New_York springs forward 2024-03-10 02:00 -> 03:00 and
falls back 2024-11-03 02:00 -> 01:00.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from lolo_runtime.nodes.timer_loop import MAX_NAP, Due, TimerLoop
from lolo_runtime.schedule import (
    Cron,
    Every,
    Schedule,
    iso_time,
    parse_cron,
    parse_every,
    parse_zone,
)
from lolo_runtime.testing import TestClock
from tests.nodes.timer_support import at

BERLIN, NEW_YORK, UTC = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("UTC")


def napping(clock: TestClock, naps: list[float]) -> Callable[[float], Awaitable[None]]:
    """A sleep for one loop on ``clock`` (``advance`` waits for it to sleep again after
    each wake) that notes how long each nap is."""
    sleep = clock.attach().sleeper()

    async def nap(seconds: float) -> None:
        naps.append(seconds)
        await sleep(seconds)

    return nap


def run_loop(schedule: Schedule, start: float, end: float) -> tuple[list[Due], list[float]]:
    """Run a :class:`TimerLoop` on a test clock from ``start`` to ``end``: the ticks it
    handed over, each as it fell due, and the naps it took."""
    clock = TestClock(start)
    handed: list[Due] = []
    naps: list[float] = []

    async def on_due(due: Due) -> None:
        assert clock.time() == due.now >= due.scheduled  # never early
        handed.append(due)

    async def main() -> None:
        loop = TimerLoop(schedule, on_due, clock.time, napping(clock, naps))
        task = asyncio.get_running_loop().create_task(loop.run(start))
        await clock.advance_to(end)
        task.cancel()

    asyncio.run(main())
    return handed, naps


def fires(schedule: Schedule, start: str, end: str) -> list[str]:
    """The fire times between two wall-clock times of the schedule's zone, as the loop
    hands them over, in ISO 8601 with the zone's offset."""
    zone = schedule.zone.key
    handed, _ = run_loop(schedule, at(start, zone), at(end, zone))
    assert all(due.passed_over is None and due.lateness == 0 for due in handed)
    return [iso_time(due.scheduled, schedule.zone) for due in handed]


# ------------------------------------------------------------------ a daily 02:30 job


def test_daily_0230_in_berlin_fires_once_a_day_across_spring_forward() -> None:
    # 02:30 does not exist on 2024-03-31: it runs right after the jump, at 03:00.
    assert fires(Cron("30 2 * * *", BERLIN), "2024-03-29T12:00", "2024-04-02T12:00") == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
    ]


def test_daily_0230_in_berlin_fires_once_across_fall_back() -> None:
    # 02:30 happens twice on 2024-10-27 (+02:00, then +01:00): it runs at the first only.
    assert fires(Cron("30 2 * * *", BERLIN), "2024-10-25T12:00", "2024-10-29T12:00") == [
        "2024-10-26T02:30:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
        "2024-10-29T02:30:00+01:00",
    ]


def test_daily_0230_in_new_york_across_both_changes() -> None:
    daily = Cron("30 2 * * *", NEW_YORK)
    assert fires(daily, "2024-03-09T00:00", "2024-03-11T12:00") == [
        "2024-03-09T02:30:00-05:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-11T02:30:00-04:00",
    ]
    # New York repeats 01:00-01:59, not 02:30: the 02:30 job is untouched.
    assert fires(daily, "2024-11-02T00:00", "2024-11-04T12:00") == [
        "2024-11-02T02:30:00-04:00",
        "2024-11-03T02:30:00-05:00",
        "2024-11-04T02:30:00-05:00",
    ]


def test_daily_0130_in_new_york_fires_once_in_the_repeated_hour() -> None:
    assert fires(Cron("30 1 * * *", NEW_YORK), "2024-11-02T00:00", "2024-11-04T12:00") == [
        "2024-11-02T01:30:00-04:00",
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]


# ------------------------------------------------------------------ hourly: by real time


@pytest.mark.parametrize(
    ("zone", "day", "hours_that_day"),
    [
        (BERLIN, "2024-03-31", 23),
        (BERLIN, "2024-10-27", 25),
        (NEW_YORK, "2024-03-10", 23),
        (NEW_YORK, "2024-11-03", 25),
    ],
    ids=["berlin-spring", "berlin-fall", "new-york-spring", "new-york-fall"],
)
@pytest.mark.parametrize("kind", ["cron", "every"])
def test_an_hourly_timer_fires_every_real_hour(
    zone: ZoneInfo, day: str, hours_that_day: int, kind: str
) -> None:
    schedule = Cron("0 * * * *", zone) if kind == "cron" else Every(3600, zone, "1h")
    start = at(f"{day}T00:00", zone.key) - 1  # just before the day's first hour
    end = at(f"{day}T23:59:59", zone.key)
    handed, _ = run_loop(schedule, start, end)
    times = [due.scheduled for due in handed]
    # One fire per hour of the day as it is lived: 23 in spring, 25 in autumn...
    assert len(times) == hours_that_day
    # ...each a real hour after the one before (no gap, no double), on the hour.
    assert all(later - earlier == 3600 for earlier, later in itertools.pairwise(times))
    assert all(t % 3600 == 0 for t in times)
    # And the local readings show the change: an hour skipped, or an hour twice.
    local = Counter(datetime.fromtimestamp(t, zone).strftime("%H:%M") for t in times)
    if hours_that_day == 23:
        assert "02:00" not in local and set(local.values()) == {1}
    else:
        repeated = "02:00" if zone is BERLIN else "01:00"
        assert local[repeated] == 2 and sum(local.values()) == 25


def test_every_5m_keeps_its_pace_through_the_repeated_hour() -> None:
    handed, _ = run_loop(
        Every(300, NEW_YORK, "5m"),
        at("2024-11-03T00:00", "America/New_York"),
        at("2024-11-03T03:00", "America/New_York"),
    )
    times = [due.scheduled for due in handed]
    assert len(times) == 4 * 12  # four real hours: 00, 01 (EDT), 01 (EST), 02
    assert {b - a for a, b in itertools.pairwise(times)} == {300}


# ------------------------------------------------------------------ restart anywhere


DST_WINDOWS = [
    ("30 2 * * *", BERLIN, "2024-03-30T00:00"),
    ("30 2 * * *", BERLIN, "2024-10-26T00:00"),
    ("30 1 * * *", NEW_YORK, "2024-11-02T00:00"),
    ("0 * * * *", BERLIN, "2024-10-26T20:00"),
    ("15,45 1-3 * * *", NEW_YORK, "2024-11-02T20:00"),
    ("*/20 * * * *", NEW_YORK, "2024-03-09T22:00"),
]


@functools.cache
def ticks_for_four_days(expr: str, zone: str, begin: str) -> tuple[float, ...]:
    """The ticks a process running from ``begin`` on follows, one after the other."""
    schedule, origin = Cron(expr, ZoneInfo(zone)), at(begin, zone)
    ticks = [schedule.next_after(origin)]
    while (last := ticks[-1]) is not None and last < origin + 4 * 86400:
        ticks.append(schedule.next_after(last))
    return tuple(t for t in ticks if t is not None)


@pytest.mark.parametrize(("expr", "zone", "begin"), DST_WINDOWS)
def test_a_restart_at_any_instant_sees_the_same_ticks(
    expr: str, zone: ZoneInfo, begin: str
) -> None:
    """Whenever a process starts (or another one joins), its first tick is the next one
    of the sequence a process running all along follows; in particular, started in the
    second copy of a repeated hour, it does not fire the first copy's tick again. Tried
    every 7.5 minutes (plus a few seconds, to land between ticks too) for three days."""
    schedule = Cron(expr, zone)
    origin = at(begin, zone.key)
    sequence = ticks_for_four_days(expr, zone.key, begin)
    for step in range(3 * 24 * 8):
        t = origin + step * 450 + (step % 7)
        expected = next(s for s in sequence if s > t)
        assert schedule.next_after(t) == expected, iso_time(t, zone)
        latest = max((s for s in sequence if s <= t), default=None)
        assert schedule.latest_between(origin, t) == latest, iso_time(t, zone)


def test_started_in_the_second_copy_of_a_repeated_hour() -> None:
    # cronsim alone answers 02:30+02:00 here, which is already 45 minutes past.
    second_copy = datetime(2024, 10, 27, 2, 15, tzinfo=BERLIN, fold=1).timestamp()
    following = Cron("30 2 * * *", BERLIN).next_after(second_copy)
    assert following is not None
    assert iso_time(following, BERLIN) == "2024-10-28T02:30:00+01:00"


# ------------------------------------------------------------------ every


def test_every_ticks_on_multiples_of_the_period_since_the_epoch() -> None:
    every = Every(30, UTC)
    assert every.next_after(at("2024-01-01T00:00:10")) == at("2024-01-01T00:00:30")
    assert every.next_after(at("2024-01-01T00:00:30")) == at("2024-01-01T00:01:00")
    assert every.latest_between(at("2024-01-01T00:00"), at("2024-01-01T00:02:59")) == at(
        "2024-01-01T00:02:30"
    )
    assert every.latest_between(at("2024-01-01T00:02:30"), at("2024-01-01T00:02:59")) is None
    # The zone changes how times read, never when they are.
    assert Every(3600, ZoneInfo("Asia/Kolkata")).next_after(0.5) == 3600.0


def test_latest_between_on_a_sparse_schedule_looks_far_enough_back() -> None:
    yearly = Cron("@yearly", BERLIN)
    assert yearly.latest_between(at("2020-06-01"), at("2024-06-01")) == at(
        "2024-01-01T00:00", "Europe/Berlin"
    )
    assert yearly.latest_between(at("2024-02-01"), at("2024-06-01")) is None


def test_upcoming_lists_the_next_fire_times() -> None:
    cron = Cron("*/5 * * * *", BERLIN)
    start = at("2024-03-31T01:58", "Europe/Berlin")
    assert [iso_time(t, BERLIN) for t in cron.upcoming(start, 3)] == [
        "2024-03-31T03:00:00+02:00",  # 02:00 never comes that night
        "2024-03-31T03:05:00+02:00",
        "2024-03-31T03:10:00+02:00",
    ]


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("90m", 5400),
        ("2h0m5s", 7205),
    ],
)
def test_every_reads_seconds_minutes_and_hours(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["30", "0s", "1.5h", "h", "", "1d", "5 m", "-5s", "1s1h"])
def test_every_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration such as|at least 1s"):
        parse_every(text)


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("0 9 * * MON-FRI", "0 9 * * MON-FRI"),
    ],
)
def test_cron_takes_five_fields_or_a_shorthand(text: str, expr: str) -> None:
    assert parse_cron(text) == expr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * * * *", "expected 5 fields .* got 6; for seconds use 'every:'"),
        ("* * * *", "expected 5 fields .* got 4"),
        ("61 * * * *", "bad minute"),
        ("0 0 30 2 *", "bad day-of-month"),
        ("@often", "expected 5 fields"),
    ],
)
def test_cron_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cron(text)


@pytest.mark.parametrize("name", ["Europe/Berln", "", "../etc/passwd", "Europe", "CEST"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_zone(name)


# ------------------------------------------------------------------ the sleeping loop


def test_the_loop_naps_at_most_max_nap_and_wakes_on_time() -> None:
    daily = Cron("0 12 * * *", UTC)
    handed, naps = run_loop(daily, at("2024-05-01T00:00"), at("2024-05-03T00:00"))
    assert [due.scheduled for due in handed] == [at("2024-05-01T12:00"), at("2024-05-02T12:00")]
    assert max(naps) == MAX_NAP


def test_ticks_that_fell_due_together_are_handed_over_as_the_latest() -> None:
    """A suspended machine: the clock jumps ten minutes during one nap. The loop hands over
    the latest due tick once, naming the first one it passed over, then goes on."""
    clock = TestClock(at("2024-05-01T00:00"))
    handed: list[Due] = []

    async def main() -> None:
        loop = TimerLoop(Every(60, UTC), _append(handed), clock.time, napping(clock, []))
        task = asyncio.get_running_loop().create_task(loop.run(clock.time()))
        await clock.advance_to(at("2024-05-01T00:02:30"))
        clock.jump(615)  # suspended in the middle of a nap, which ends at 00:13:15
        await clock.advance_to(at("2024-05-01T00:14:30"))
        task.cancel()

    asyncio.run(main())
    assert [(iso_time(d.scheduled, UTC)[11:16], d.passed_over) for d in handed] == [
        ("00:01", None),
        ("00:02", None),
        ("00:13", at("2024-05-01T00:03")),
        ("00:14", None),
    ]
    assert handed[2].lateness == 15


def test_a_clock_set_back_delays_the_tick_rather_than_repeating_one() -> None:
    clock = TestClock(at("2024-05-01T00:00"))
    handed: list[Due] = []

    async def main() -> None:
        loop = TimerLoop(Every(60, UTC), _append(handed), clock.time, napping(clock, []))
        task = asyncio.get_running_loop().create_task(loop.run(clock.time()))
        await clock.advance_to(at("2024-05-01T00:02:30"))
        clock.jump(-150)  # NTP steps the clock back to 00:00:00
        await clock.advance_to(at("2024-05-01T00:04:30"))
        task.cancel()

    asyncio.run(main())
    times = [iso_time(d.scheduled, UTC)[11:16] for d in handed]
    assert times == ["00:01", "00:02", "00:03", "00:04"]
    assert all(d.now >= d.scheduled for d in handed)


def _append(handed: list[Due]) -> Callable[[Due], Awaitable[None]]:
    async def on_due(due: Due) -> None:
        handed.append(due)

    return on_due
