"""The meter: counts, failures, events per out-port, and handler-time quantiles from its
log buckets, with a clock the test moves."""

from __future__ import annotations

import random

import pytest

from lolo_runtime.inspector.meter import (
    BUCKETS,
    BUCKETS_PER_OCTAVE,
    WINDOW,
    Meter,
    bucket_bounds,
    bucket_of,
    quantile,
)

RELATIVE_ERROR = 1 / (2 * BUCKETS_PER_OCTAVE)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seconds", [1e-6, 3.7e-6, 1e-4, 0.00123, 0.02, 0.5, 1.0, 7.9, 100.0])
def test_a_time_falls_in_a_bucket_that_holds_it(seconds: float) -> None:
    low, high = bucket_bounds(bucket_of(seconds))
    assert low <= seconds < high
    assert (low + high) / 2 == pytest.approx(seconds, rel=RELATIVE_ERROR)


def test_times_outside_the_range_land_in_the_end_buckets() -> None:
    assert bucket_of(0.0) == 0
    assert bucket_of(-1.0) == 0
    assert bucket_of(1e-12) == 0
    assert bucket_of(1e6) == BUCKETS - 1


def test_buckets_are_contiguous_and_increasing() -> None:
    for index in range(BUCKETS - 1):
        low, high = bucket_bounds(index)
        assert low < high == bucket_bounds(index + 1)[0]


def test_quantiles_of_a_known_mix_are_within_half_a_bucket() -> None:
    clock = Clock()
    meter = Meter(clock)
    rng = random.Random(7)
    times = [rng.uniform(0.001, 0.002) for _ in range(980)] + [0.250] * 20
    rng.shuffle(times)
    for took in times:
        meter.called("n", clock.now, clock.now + took)
    reading = meter.read("n")
    ordered = sorted(times)
    assert reading.calls == 1000
    assert reading.errors == 0
    assert reading.seconds == pytest.approx(sum(times))
    assert reading.p50 == pytest.approx(ordered[499], rel=RELATIVE_ERROR)
    assert reading.p99 == pytest.approx(0.250, rel=RELATIVE_ERROR)


def test_a_node_never_called_reads_as_zeros() -> None:
    reading = Meter(Clock()).read("ghost")
    assert (reading.calls, reading.errors, reading.p50, reading.p99) == (0, 0, None, None)
    assert quantile([0] * BUCKETS, 0.5) is None


def test_failures_and_events_per_port_are_counted_by_name() -> None:
    meter = Meter(Clock())
    meter.failed("a")
    meter.failed("a")
    for _ in range(3):
        meter.sent("ws", "message")
    meter.sent("ws", "req")
    assert meter.read("a").errors == 2
    assert meter.read("a").calls == 0
    assert meter.events("ws", "message") == 3
    assert meter.events("ws", "req") == 1
    assert meter.events("ws", "close") == 0


def test_quantiles_forget_calls_older_than_two_windows_but_counts_do_not() -> None:
    clock = Clock()
    meter = Meter(clock)
    meter.called("n", clock.now, clock.now + 0.5)
    clock.now += WINDOW + 1  # the slow call is now in the previous window: still seen
    meter.called("n", clock.now, clock.now + 0.001)
    assert meter.read("n").p99 == pytest.approx(0.5, rel=RELATIVE_ERROR)
    clock.now += WINDOW  # one more window: the slow call has gone
    meter.called("n", clock.now, clock.now + 0.001)
    reading = meter.read("n")
    assert reading.p99 == pytest.approx(0.001, rel=RELATIVE_ERROR)
    assert reading.calls == 3
    clock.now += 3 * WINDOW  # nothing for a long while: no recent times at all
    reading = meter.read("n")
    assert reading.p50 is None and reading.calls == 3
