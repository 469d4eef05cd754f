"""The engine with and without a meter: what it counts, and that without one it runs the
class's own methods (nothing swapped in, nothing checked)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from lolo_runtime.engine import Engine
from lolo_runtime.errors import Reject
from lolo_runtime.inspector.meter import Meter
from lolo_runtime.node import Node
from lolo_runtime.routing import RoutingTable
from tests.nodes_for_tests import RecordingInvocation, edges, make_node


def _engine(nodes: Sequence[Node], *wires: str) -> Engine:
    return Engine("app", {node.id: node for node in nodes}, RoutingTable(edges(*wires)))


def test_without_a_meter_the_engine_runs_its_plain_methods() -> None:
    engine = _engine([make_node("a", lambda ev, ctx: None)])
    assert engine.meter is None
    assert not {"fire", "_call", "_handler_failed"} & set(vars(engine))


def test_calls_failures_times_and_events_along_edges_are_counted() -> None:
    async def split(ev: dict[str, Any], ctx: Any) -> None:
        ctx.route(ev, "left")
        ctx.route(ev, "left")
        ctx.route(ev, "right")

    async def slow(ev: dict[str, Any], ctx: Any) -> None:
        await asyncio.sleep(0.02)

    def bad(ev: dict[str, Any], ctx: Any) -> None:
        raise ValueError("boom")

    def refuse(ev: dict[str, Any], ctx: Any) -> None:
        raise Reject(401, "no key")

    trigger = make_node("t", split, inputs=())
    nodes = [
        trigger,
        make_node("split", split, outputs=("left", "right", "unwired")),
        make_node("slow", slow),
        make_node("bad", bad),
        make_node("refuse", refuse),
    ]
    engine = _engine(
        nodes,
        "t.out -> split.in",
        "split.left -> slow.in",
        "split.right -> bad.in",
        "split.right -> refuse.in",
    )
    meter = Meter()
    engine.meter_with(meter)
    invocation = RecordingInvocation()

    async def run() -> None:
        for _ in range(3):
            await engine.fire(trigger, "out", {}, invocation)

    asyncio.run(run())
    assert meter.events("t", "out") == 3
    assert meter.events("split", "left") == 6
    assert meter.events("split", "right") == 3
    assert meter.read("split").calls == 3
    slow_reading = meter.read("slow")
    assert slow_reading.calls == 6 and slow_reading.errors == 0
    assert slow_reading.p50 is not None and slow_reading.p50 >= 0.018
    assert slow_reading.seconds >= 6 * 0.018
    bad_reading = meter.read("bad")
    assert (bad_reading.calls, bad_reading.errors) == (3, 3)
    # A Reject is the node saying no on purpose (an auth node), not a failing handler.
    refuse_reading = meter.read("refuse")
    assert (refuse_reading.calls, refuse_reading.errors) == (3, 0)
    # The chain still behaves as without a meter: failures reach the invocation.
    assert sorted(node for node, _ in invocation.failures) == ["bad"] * 3 + ["refuse"] * 3


def test_a_timed_out_handler_counts_as_an_error() -> None:
    async def stuck(ev: dict[str, Any], ctx: Any) -> None:
        await asyncio.sleep(10)

    trigger = make_node("t", stuck, inputs=())
    node = make_node("stuck", stuck)
    node.call_timeout = 0.05
    engine = _engine([trigger, node], "t.out -> stuck.in")
    meter = Meter()
    engine.meter_with(meter)
    asyncio.run(engine.fire(trigger, "out", {}, RecordingInvocation()))
    reading = meter.read("stuck")
    assert (reading.calls, reading.errors) == (1, 1)


def test_counts_survive_a_swap_of_the_wiring() -> None:
    calls: list[str] = []
    trigger = make_node("t", lambda ev, ctx: None, inputs=())
    first = make_node("n", lambda ev, ctx: calls.append("first"))
    engine = _engine([trigger, first], "t.out -> n.in")
    meter = Meter()
    engine.meter_with(meter)

    async def run() -> None:
        await engine.fire(trigger, "out", {}, RecordingInvocation())
        second = make_node("n", lambda ev, ctx: calls.append("second"))
        engine.swap({"t": trigger, "n": second}, RoutingTable(edges("t.out -> n.in")))
        await engine.fire(trigger, "out", {}, RecordingInvocation())

    asyncio.run(run())
    assert calls == ["first", "second"]
    assert meter.read("n").calls == 2
    assert meter.events("t", "out") == 2
