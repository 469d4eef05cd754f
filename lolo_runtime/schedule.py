"""When a timer fires: its fire times, computed without a clock, a sleep or an event loop.

Times are Unix timestamps (float seconds, UTC). Comparing timestamps, never local
datetimes, matters here: Python compares two datetimes of one zone by their wall-clock
reading and ignores ``fold``, so 02:30 before and 02:30 after a fall-back change would
look equal.

* ``every: 30s`` counts from the Unix epoch: the ticks are the multiples of the period,
  whatever the zone and whenever the process started. Every process of an app therefore
  agrees on them (the once-per-cluster lease is keyed by the tick), a restart does not
  shift them, and daylight-saving changes cannot touch them: ``every: 1h`` fires every
  3600 real seconds, which is twice at a local 02:00 that happens twice.
* ``cron:`` is evaluated by cronsim in the timer's zone, which does what Debian's cron
  does: a job at a set time that falls in the hour skipped in spring runs right after the
  jump (no lost day), one that falls in the hour repeated in autumn runs once (no double
  fire); jobs with a wildcard hour run by real time, so an hourly job runs in both copies
  of the repeated hour and skips none in spring.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "Cron",
    "Every",
    "Schedule",
    "iso_time",
    "parse_cron",
    "parse_every",
    "parse_zone",
]

_EVERY = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")

CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The usual crontab shorthands, spelt out for cronsim (which does not read them)."""

_REFERENCE = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))
"""Where a cron expression is first tried at load time (a fixed date: checks stay pure)."""

_CATCH_UP_WINDOWS = (3600.0, 86400.0, 35 * 86400.0, 400 * 86400.0)
"""How far back :meth:`Schedule.latest_between` looks first: near windows first, so that a
dense schedule is walked over an hour, not over the months since the last fire."""


def parse_every(text: str) -> int:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"1h30m"`` → seconds; a :class:`ValueError` saying
    what is expected otherwise. (Messages leave out the value: the loader adds it.)"""
    match = _EVERY.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError("expected a duration such as '30s', '5m', '1h' or '1h30m' (s, m, h)")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError("the period must be at least 1s")
    return total


def parse_cron(text: str) -> str:
    """A five-field cron expression (or a shorthand such as ``@daily``), checked by
    cronsim; returns what cronsim is to evaluate. Raises :class:`ValueError`."""
    expr = CRON_MACROS.get(text.strip().lower(), text.strip())
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            "expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}" + ("; for seconds use 'every:'" if len(fields) == 6 else "")
        )
    try:
        next(CronSim(expr, _REFERENCE))
    except CronSimError as exc:
        raise ValueError(str(exc).lower()) from None
    except StopIteration:
        raise ValueError("it never fires") from None
    return expr


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone (``Europe/Berlin``, ``UTC``) or a :class:`ValueError` naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            "unknown time zone (give an IANA name such as 'UTC' or 'Europe/Berlin')"
        ) from None


def iso_time(t: float, zone: ZoneInfo, timespec: str = "seconds") -> str:
    """``t`` as ISO 8601 in ``zone``, with its offset there (``2024-03-31T03:00:00+02:00``)."""
    return datetime.fromtimestamp(t, zone).isoformat(timespec=timespec)


class Schedule(ABC):
    """A timer's fire times in one zone."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    @abstractmethod
    def next_after(self, t: float) -> float | None:
        """The first fire time strictly after ``t``; None if there is none (ever again)."""

    @abstractmethod
    def describe(self) -> str:
        """For log lines: what the schedule is."""

    def upcoming(self, t: float, count: int) -> list[float]:
        """The next ``count`` fire times after ``t`` (fewer if the schedule ends)."""
        found: list[float] = []
        while len(found) < count:
            following = self.next_after(found[-1] if found else t)
            if following is None:
                break
            found.append(following)
        return found

    def latest_between(self, after: float, until: float) -> float | None:
        """The last fire time in ``(after, until]``, or None if there is none.

        It walks forward with :meth:`next_after` (so it finds exactly the times a running
        timer would have fired), from no further back than it must.
        """
        if until <= after:
            return None
        for window in (*_CATCH_UP_WINDOWS, math.inf):
            start = max(after, until - window)
            found = None
            for t in self._walk(start):
                if t > until:
                    break
                found = t
            if found is not None or start == after:
                return found
        return None  # pragma: no cover - the infinite window always returns

    def _walk(self, t: float) -> Iterator[float]:
        following = self.next_after(t)
        while following is not None:
            yield following
            following = self.next_after(following)


class Every(Schedule):
    """Every ``period`` seconds, on the multiples of the period since the Unix epoch."""

    def __init__(self, period: int, zone: ZoneInfo, text: str = "") -> None:
        super().__init__(zone)
        if period <= 0:
            raise ValueError(f"the period must be positive, got {period}")
        self.period = period
        self.text = text or f"{period}s"

    def next_after(self, t: float) -> float:
        return float((math.floor(t / self.period) + 1) * self.period)

    def latest_between(self, after: float, until: float) -> float | None:
        latest = float(math.floor(until / self.period) * self.period)
        return latest if latest > after else None

    def describe(self) -> str:
        return f"every {self.text}"


class Cron(Schedule):
    """A cron expression (five fields) evaluated by cronsim in ``zone``."""

    _MAX_SKIPS = 10_000
    """Results at or before the start are passed over (see ``next_after``); this bounds that."""

    def __init__(self, expr: str, zone: ZoneInfo, text: str = "") -> None:
        super().__init__(zone)
        self.expr = parse_cron(expr)
        self.text = text or expr

    def next_after(self, t: float) -> float | None:
        # cronsim evaluates jobs at set times on the naive local clock. Started inside the
        # second copy of a repeated hour, it may answer a time of the *first* copy, an
        # instant already past: those are skipped here, by timestamp, or a restart at
        # 02:15 (second copy) would fire the 02:30 job of the first copy a second time.
        times = CronSim(self.expr, datetime.fromtimestamp(t, self.zone))
        try:
            for _ in range(self._MAX_SKIPS):
                found = next(times).timestamp()
                if found > t:
                    return found
        except StopIteration:  # cronsim found nothing in 50 years
            return None
        return None  # pragma: no cover - a cron expression repeats within a day or so

    def describe(self) -> str:
        return f"cron {self.text!r} in {self.zone.key}"
