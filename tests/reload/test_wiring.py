"""``Engine.swap``, what ``--reload`` builds on: a chain finishes on the wiring it started on."""

from __future__ import annotations

import asyncio
from typing import Any

from lolo_runtime.engine import Engine
from lolo_runtime.routing import RoutingTable
from tests.nodes_for_tests import RecordingInvocation, edges, make_node


def test_a_chain_in_flight_at_a_swap_finishes_on_the_old_wiring() -> None:
    seen: list[tuple[str, int]] = []

    async def run() -> tuple[bool, bool]:
        arrived, gate = asyncio.Event(), asyncio.Event()

        async def first(ev: dict[str, Any], ctx: Any) -> None:
            if ev.get("wait"):
                arrived.set()
                await gate.wait()
            ctx.route(ev)

        async def old_sink(ev: dict[str, Any], ctx: Any) -> None:
            seen.append(("old", ev["n"]))

        async def new_sink(ev: dict[str, Any], ctx: Any) -> None:
            seen.append(("new", ev["n"]))

        trigger, a = make_node("t", first), make_node("a", first)
        table = RoutingTable(edges("t.out -> a.in", "a.out -> b.in"))
        engine = Engine("app", {"t": trigger, "a": a, "b": make_node("b", old_sink)}, table)
        slow = asyncio.create_task(
            engine.fire(trigger, "out", {"n": 1, "wait": True}, RecordingInvocation())
        )
        await arrived.wait()
        old = engine.swap({"t": trigger, "a": a, "b": make_node("b", new_sink)}, table)
        await engine.fire(trigger, "out", {"n": 2}, RecordingInvocation())
        assert seen == [("new", 2)]  # a new chain takes the new wiring at once
        not_yet = await old.finished(0.05)  # the first chain still waits at the gate
        gate.set()
        await slow
        return not_yet, await old.finished(5)

    not_yet, done = asyncio.run(run())
    assert not_yet is False
    assert done is True
    assert seen == [("new", 2), ("old", 1)]  # its second hop went where its wiring said


def test_a_swap_with_other_edges_routes_new_chains_only_by_them() -> None:
    seen: list[str] = []

    def forward(ev: dict[str, Any], ctx: Any) -> None:
        ctx.route(ev)

    def record(name: str) -> Any:
        def sink(ev: dict[str, Any], ctx: Any) -> None:
            seen.append(name)

        return sink

    trigger = make_node("t", forward)
    nodes = {"t": trigger, "x": make_node("x", record("x")), "y": make_node("y", record("y"))}
    engine = Engine("app", nodes, RoutingTable(edges("t.out -> x.in")))

    async def run() -> bool:
        await engine.fire(trigger, "out", {}, RecordingInvocation())
        old = engine.swap(nodes, RoutingTable(edges("t.out -> y.in")))
        await engine.fire(trigger, "out", {}, RecordingInvocation())
        return await old.finished(0)

    assert asyncio.run(run()) is True  # nothing ran on it any more
    assert seen == ["x", "y"]
    assert engine.is_wired("t", "out")
