"""``lolo/barrier`` end to end: a real lolo-run, real HTTP requests (the barrier's logic
on its own is in tests/nodes/test_barrier.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.handlers.barrier_probe import LOOKUP_SECONDS
from tests.e2e.test_http_trigger import fetch, log_lines
from tests.support import ROOT, LoloProcess, refused_start

FLOW = ROOT / "tests" / "e2e" / "flows" / "barrier.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoloProcess]:
    state = tmp_path_factory.mktemp("barrier") / "state.sqlite3"
    with LoloProcess(FLOW, state=state) as process:
        yield process


def test_two_lookups_are_gathered_into_one_answer(server: LoloProcess) -> None:
    reply = fetch(server.port, "GET", "/lookup/42")
    assert reply.status == 200
    gathered = reply.json()["gathered"]
    assert list(gathered) == ["user", "orders"]  # the order of the task ports
    assert gathered["user"] == {"id": "42", "name": "user 42"}
    assert gathered["orders"]["count"] == 2
    # The slow one was waited for (the loop may wake a timer a hair early, and 'took' is
    # rounded to the millisecond).
    assert gathered["orders"]["took"] >= LOOKUP_SECONDS - 0.01


def test_the_lookups_run_at_the_same_time(server: LoloProcess) -> None:
    started = time.monotonic()
    reply = fetch(server.port, "GET", "/lookup/7?slow=user")  # both take LOOKUP_SECONDS
    took = time.monotonic() - started
    assert reply.status == 200
    assert reply.json()["gathered"]["user"]["id"] == "7"
    assert LOOKUP_SECONDS - 0.01 <= took < 2 * LOOKUP_SECONDS - 0.05


def test_concurrent_requests_each_get_their_own_results(server: LoloProcess) -> None:
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda n: fetch(server.port, "GET", f"/lookup/{n}"), range(16)))
    assert [r.json()["gathered"]["user"]["id"] for r in replies] == [str(n) for n in range(16)]


def test_a_timeout_port_answers_with_the_results_so_far(server: LoloProcess) -> None:
    started = time.monotonic()
    reply = fetch(server.port, "GET", "/partial/5")
    assert time.monotonic() - started < 3
    assert reply.status == 503
    assert reply.json() == {"partial": {"user": {"id": "5", "name": "user 5"}}}


def test_without_a_timeout_port_the_event_is_dropped_with_a_warning(tmp_path: Path) -> None:
    with LoloProcess(FLOW, state=tmp_path / "state.sqlite3") as server:
        reply = fetch(server.port, "GET", "/dropped/9")
        # Nothing answers: the trigger's own timeout (1 s) does.
        assert reply.status == 504
        [warning] = log_lines(server, "WARNING", "gather-or-drop")
        assert "task(s) stuck not done within 0.3s" in warning
        assert "the event is dropped" in warning


def test_a_task_that_raises_fails_the_request_at_once(tmp_path: Path) -> None:
    with LoloProcess(FLOW, state=tmp_path / "state.sqlite3") as server:
        started = time.monotonic()
        reply = fetch(server.port, "GET", "/failing/3")
        assert time.monotonic() - started < 2  # not the barrier's 5 s timeout
        assert reply.status == 500
        assert b"orders service" not in reply.body  # no detail leaks
        [error] = log_lines(server, "ERROR", "broken")
        assert "the orders service is down" in error
        # The barrier logs once it has stopped waiting, just after the answer went out.
        deadline = time.monotonic() + 2
        while not log_lines(server, "task 'broken' failed in node 'broken'; event dropped"):
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)


def test_an_unwired_task_port_stops_the_app_before_it_listens(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        FLOW.read_text()
        .replace("  - gather.orders -> orders.in\n", "")
        .replace("../handlers/", str(ROOT / "tests" / "e2e" / "handlers") + "/")
    )
    stderr = refused_start(flow, tmp_path / "state.sqlite3")
    assert "node 'gather': setup failed" in stderr
    assert "task port(s) 'orders' lead nowhere" in stderr
