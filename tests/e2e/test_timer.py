"""``lolo/timer-trigger`` in real ``lolo-run`` processes: a flow of a timer alone, two
processes sharing a redis-server (or one SQLite file) firing each tick once, a slow chain
holding ticks back across processes, and catching up after a restart.

The probe handler logs ``fired <scheduledAt> catchUp=... firedAt=...`` for every tick it
gets; the tests read those lines from each process's stderr."""

from __future__ import annotations

import itertools
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.redis_support import RedisServer
from tests.support import ROOT, LoloProcess, free_port

FLOWS = ROOT / "tests" / "e2e" / "flows"
TICKS, SLOW, CATCH_UP = (FLOWS / f"timer-{name}.yaml" for name in ("ticks", "slow", "catch-up"))

_FIRED = re.compile(
    r"\] fired (?P<at>\S+) catchUp=(?P<catch_up>True|False) firedAt=(?P<fired>\S+) "
    r"node=(?P<node>\S+) session=(?P<session>\S+)$",
    re.MULTILINE,
)
_NEXT = re.compile(r"timer: every 1s; next fires at (\S+), (\S+), (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Fire:
    scheduled: datetime
    fired: datetime
    catch_up: bool
    node: str
    session: str


def fires(process: LoloProcess) -> list[Fire]:
    """The ticks the probe of ``process`` logged, in the order it got them."""
    return [
        Fire(
            datetime.fromisoformat(m["at"]),
            datetime.fromisoformat(m["fired"]),
            m["catch_up"] == "True",
            m["node"],
            m["session"],
        )
        for m in _FIRED.finditer(process.stderr())
    ]


def seconds(found: list[Fire]) -> list[int]:
    """The scheduled times as Unix seconds, sorted."""
    return sorted(int(fire.scheduled.timestamp()) for fire in found)


def test_a_flow_of_a_timer_alone_ticks_every_second_without_a_port() -> None:
    port = free_port()
    with LoloProcess(TICKS, "--port", str(port)) as process:
        # It says it opened no port, rather than claim a port nothing listens on.
        assert process.stdout_lines[-1].strip() == "Running without a port"
        assert "no trigger of it listens" in process.stderr()
        time.sleep(3.5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert process.stop() == 0
        found = fires(process)
        log = process.stderr()
    ticks = seconds(found)
    assert len(ticks) >= 3
    assert all(later - earlier == 1 for earlier, later in itertools.pairwise(ticks))
    for fire in found:
        assert fire.node == "every-second" and not fire.catch_up
        assert fire.scheduled.utcoffset() == fire.fired.utcoffset()  # New York time
        assert str(fire.scheduled.tzinfo) in ("UTC-05:00", "UTC-04:00")
        assert 0 <= (fire.fired - fire.scheduled).total_seconds() < 1
    assert len({fire.session for fire in found}) == len(found)
    # At start, an INFO line lists the next three fire times: the first three ticks.
    listed = _NEXT.search(log)
    assert listed is not None, log
    assert [datetime.fromisoformat(t) for t in listed.groups()] == [
        fire.scheduled for fire in found[:3]
    ]


@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_two_processes_fire_each_tick_exactly_once(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two ``lolo-run`` processes of one app, on one redis-server or on one SQLite file,
    for about eight seconds: every tick from the first to the last is fired, by exactly
    one of them."""
    if store == "redis":
        url = request.getfixturevalue("redis_server").url
        one, two = LoloProcess(TICKS, "--redis", url), LoloProcess(TICKS, "--redis", url)
    else:
        shared = tmp_path / "shared.sqlite3"
        one, two = LoloProcess(TICKS, state=shared), LoloProcess(TICKS, state=shared)
    with one, two:
        time.sleep(8)
        assert one.stop() == 0
        assert two.stop() == 0
        by_one, by_two = fires(one), fires(two)
    ticks = seconds(by_one + by_two)
    assert len(ticks) >= 7, (by_one, by_two)
    assert len(set(ticks)) == len(ticks), f"fired twice: {ticks}"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), f"gaps: {ticks}"


def test_a_slow_chain_holds_back_the_ticks_of_every_process(redis_server: RedisServer) -> None:
    """Chains take 2.5 s, ticks come every second: with ``allow_overlap: false`` the two
    ticks during a chain are skipped, whichever process would have fired them."""
    url = redis_server.url
    with LoloProcess(SLOW, "--redis", url) as one, LoloProcess(SLOW, "--redis", url) as two:
        time.sleep(9)
        assert one.stop() == 0
        assert two.stop() == 0
        ticks = seconds(fires(one) + fires(two))
        log = one.stderr() + two.stderr()
    assert len(ticks) >= 2, log
    assert all(later - earlier >= 3 for earlier, later in itertools.pairwise(ticks)), ticks
    assert "skipped: the previous tick's chain is still running" in log


def test_catch_up_latest_fires_the_missed_tick_once_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with LoloProcess(CATCH_UP, state=state) as first:
        time.sleep(3)
        assert first.stop() == 0
        before = fires(first)
    stopped = time.time()
    time.sleep(4.5)  # two or three ticks of every 2s go by
    with LoloProcess(CATCH_UP, state=state) as second:
        time.sleep(2.5)
        assert second.stop() == 0
        after = fires(second)
    assert before and not any(fire.catch_up for fire in before)
    caught, *regular = after
    assert caught.catch_up
    missed = caught.scheduled.timestamp()
    assert missed > stopped  # a tick of the time it was down...
    assert missed - before[-1].scheduled.timestamp() >= 4  # ...the latest, not the first
    assert regular and not any(fire.catch_up for fire in regular)
    assert all(fire.scheduled > caught.scheduled for fire in regular)
