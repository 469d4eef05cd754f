"""Counters the engine feeds while ``--inspect`` is on: per node, its handler calls,
failures and handler times; per out-port, the events that left it.

Everything is keyed by node id and port name (strings), never by node object, so the
figures of a node carry on when ``--reload`` swaps a new version of it in.

Handler times go into a fixed set of buckets, :data:`BUCKETS_PER_OCTAVE` per power of
two from about 1 microsecond to 128 seconds (anything outside lands in the first or last
bucket). Recording a time is a ``math.frexp`` and a list increment; a quantile read from
the buckets is within half a bucket of the truth, that is within
``1 / (2 * BUCKETS_PER_OCTAVE)`` (6.25 %) of it. Quantiles describe the last
:data:`WINDOW` to ``2 * WINDOW`` seconds (two windows, the current and the one before),
so the page shows how the app behaves now rather than since it started; call counts,
failure counts and the time summed over all calls are kept since start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

BUCKETS_PER_OCTAVE = 8
MIN_EXPONENT = -19
"""``frexp`` exponent of the smallest bucket's octave: times from 2**-20 s (0.95 us)."""
MAX_EXPONENT = 7
"""``frexp`` exponent of the largest octave: times up to 2**7 s (128 s)."""
BUCKETS = (MAX_EXPONENT - MIN_EXPONENT + 1) * BUCKETS_PER_OCTAVE
WINDOW = 30.0
"""Seconds per quantile window (times are ``time.perf_counter`` seconds)."""


def bucket_of(seconds: float) -> int:
    """The bucket a handler time falls into."""
    if seconds <= 0.0:
        return 0
    mantissa, exponent = math.frexp(seconds)  # seconds = mantissa * 2**exponent, 0.5 <= m < 1
    index = (exponent - MIN_EXPONENT) * BUCKETS_PER_OCTAVE + int(
        (mantissa - 0.5) * 2 * BUCKETS_PER_OCTAVE
    )
    if index < 0:
        return 0
    return index if index < BUCKETS else BUCKETS - 1


def bucket_bounds(index: int) -> tuple[float, float]:
    """The times ``[low, high)`` bucket ``index`` holds."""
    octave, step = divmod(index, BUCKETS_PER_OCTAVE)
    scale = math.ldexp(1.0, octave + MIN_EXPONENT)
    width = 0.5 / BUCKETS_PER_OCTAVE
    return scale * (0.5 + step * width), scale * (0.5 + (step + 1) * width)


def quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1) of the times counted in ``counts`` (the middle of
    the bucket it falls in), or None when nothing was counted."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            low, high = bucket_bounds(index)
            return (low + high) / 2
    raise AssertionError("unreachable: the counts add up to total")


class NodeMeter:
    """One node's counters."""

    __slots__ = ("calls", "current", "errors", "previous", "seconds", "window_end")

    def __init__(self, now: float) -> None:
        self.calls = 0
        self.errors = 0
        self.seconds = 0.0
        """Handler time summed over every call since start."""
        self.current = [0] * BUCKETS
        self.previous = [0] * BUCKETS
        self.window_end = now + WINDOW

    def roll(self, now: float) -> None:
        """Start a new window if ``now`` is past the current one's end."""
        if now < self.window_end:
            return
        if now < self.window_end + WINDOW:
            self.previous = self.current
            self.window_end += WINDOW
        else:  # nothing was counted for a whole window
            self.previous = [0] * BUCKETS
            self.window_end = now + WINDOW
        self.current = [0] * BUCKETS

    def recent(self, now: float) -> list[int]:
        """The bucket counts of the last one to two windows."""
        self.roll(now)
        return [a + b for a, b in zip(self.current, self.previous, strict=True)]


@dataclass(frozen=True, slots=True)
class NodeReading:
    """What :meth:`Meter.read` gives for one node."""

    calls: int
    errors: int
    seconds: float
    p50: float | None
    p99: float | None


class Meter:
    """The counters of one app process. Its three recording methods are what the engine
    calls on its hot path (see ``Engine.meter_with``): they only add to numbers."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.perf_counter
        """The engine's clock (``time.perf_counter``); tests give their own."""
        self.nodes: dict[str, NodeMeter] = {}
        self.ports: dict[tuple[str, str], int] = {}
        """(node id, out-port) -> events that left it."""

    def _node(self, node_id: str, now: float) -> NodeMeter:
        meter = self.nodes.get(node_id)
        if meter is None:
            meter = self.nodes[node_id] = NodeMeter(now)
        return meter

    def called(self, node_id: str, started: float, ended: float) -> None:
        """A handler of ``node_id`` ran from ``started`` to ``ended`` (clock seconds)."""
        meter = self.nodes.get(node_id)
        if meter is None:
            meter = self.nodes[node_id] = NodeMeter(ended)
        elif ended >= meter.window_end:
            meter.roll(ended)
        took = ended - started
        meter.calls += 1
        meter.seconds += took
        meter.current[bucket_of(took)] += 1

    def failed(self, node_id: str) -> None:
        """A handler of ``node_id`` raised (or timed out)."""
        self._node(node_id, self.clock()).errors += 1

    def sent(self, node_id: str, port: str) -> None:
        """An event left ``node_id.port`` (to every in-port wired to it)."""
        key = (node_id, port)
        ports = self.ports
        ports[key] = ports.get(key, 0) + 1

    def read(self, node_id: str) -> NodeReading:
        """One node's figures now (zeros for a node never called)."""
        meter = self.nodes.get(node_id)
        if meter is None:
            return NodeReading(0, 0, 0.0, None, None)
        recent = meter.recent(self.clock())
        return NodeReading(
            meter.calls, meter.errors, meter.seconds, quantile(recent, 0.5), quantile(recent, 0.99)
        )

    def events(self, node_id: str, port: str) -> int:
        """Events that left ``node_id.port`` since start: each edge from it carried them all."""
        return self.ports.get((node_id, port), 0)
