"""The engine carrying events between real nodes, on an event loop but with no sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from lolo_runtime.engine import Engine
from lolo_runtime.node import Node
from lolo_runtime.routing import RoutingTable
from tests.nodes_for_tests import RecordingInvocation, edges, make_node


def _engine(nodes: Sequence[Node], *wires: str) -> Engine:
    return Engine("app", {node.id: node for node in nodes}, RoutingTable(edges(*wires)))


def test_a_chain_runs_depth_first_and_in_routing_order() -> None:
    seen: list[tuple[str, Any]] = []

    async def source(ev: dict[str, Any], ctx: Any) -> None:
        seen.append(("source", ev["n"]))
        ctx.route({"n": ev["n"], "step": 1})
        ctx.route({"n": ev["n"], "step": 2})
        seen.append(("source returns", ev["n"]))

    async def sink(ev: dict[str, Any], ctx: Any) -> None:
        await asyncio.sleep(0)
        seen.append(("sink", (ev["n"], ev["step"])))

    a, b = make_node("a", source), make_node("b", sink)
    trigger = make_node("t", source)  # only its id is used, as the source of the first hop
    engine = _engine([trigger, a, b], "t.out -> a.in", "a.out -> b.in")

    async def run() -> None:
        for n in range(3):
            await engine.fire(trigger, "out", {"n": n}, RecordingInvocation())

    asyncio.run(run())
    expected: list[tuple[str, Any]] = []
    for n in range(3):
        expected += [("source", n), ("source returns", n), ("sink", (n, 1)), ("sink", (n, 2))]
    assert seen == expected


def test_fan_out_hands_the_same_event_to_every_target_concurrently() -> None:
    received: dict[str, dict[str, Any]] = {}

    async def run() -> None:
        gate = asyncio.Event()

        async def left(ev: dict[str, Any], ctx: Any) -> None:
            received["left"] = ev
            await asyncio.wait_for(gate.wait(), 2)  # only returns if right runs meanwhile

        async def right(ev: dict[str, Any], ctx: Any) -> None:
            received["right"] = ev
            gate.set()

        trigger = make_node("t", left)
        engine = _engine(
            [trigger, make_node("l", left), make_node("r", right)], "t.out -> l.in", "t.out -> r.in"
        )
        await engine.fire(trigger, "out", {"k": 1}, RecordingInvocation())

    asyncio.run(run())
    assert received["left"] is received["right"]


def test_a_raising_handler_stops_its_branch_only_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def bad(ev: dict[str, Any], ctx: Any) -> None:
        ctx.route(ev)  # queued, then dropped because the handler raises
        raise KeyError("missing")

    def good(ev: dict[str, Any], ctx: Any) -> None:
        ran.append(ctx.node_id)

    trigger = make_node("t", good)
    nodes = [trigger, make_node("bad", bad), make_node("good", good), make_node("after", good)]
    engine = _engine(nodes, "t.out -> bad.in", "t.out -> good.in", "bad.out -> after.in")
    invocation = RecordingInvocation("sess-9")
    with caplog.at_level(logging.ERROR):
        asyncio.run(engine.fire(trigger, "out", {}, invocation))
    assert ran == ["good"]
    assert [(node, type(err)) for node, err in invocation.failures] == [("bad", KeyError)]
    [record] = caplog.records
    assert (record.node, record.session) == ("bad", "sess-9")  # type: ignore[attr-defined]
    assert "KeyError" in record.getMessage()


def test_routing_to_an_unknown_port_is_a_handler_failure() -> None:
    def wrong(ev: dict[str, Any], ctx: Any) -> None:
        ctx.route(ev, "nope")

    trigger = make_node("t", wrong)
    engine = _engine([trigger, make_node("w", wrong)], "t.out -> w.in")
    invocation = RecordingInvocation()
    asyncio.run(engine.fire(trigger, "out", {}, invocation))
    [(node_id, error)] = invocation.failures
    assert node_id == "w"
    assert "no out-port 'nope'" in str(error)


def test_a_route_made_after_the_handler_returned_starts_a_new_chain() -> None:
    kept: list[Any] = []
    delivered: list[Any] = []

    def keeper(ev: dict[str, Any], ctx: Any) -> None:
        kept.append(ctx.route)

    def sink(ev: dict[str, Any], ctx: Any) -> None:
        delivered.append(ev)

    async def run() -> None:
        trigger = make_node("t", keeper)
        engine = _engine(
            [trigger, make_node("k", keeper), make_node("s", sink)],
            "t.out -> k.in",
            "k.out -> s.in",
        )
        await engine.fire(trigger, "out", {}, RecordingInvocation())
        assert delivered == []
        kept[0]({"late": True})
        assert await engine.drain(timeout=2)

    asyncio.run(run())
    assert delivered == [{"late": True}]


def test_emit_kept_in_a_closure_works_from_a_later_event_of_another_node() -> None:
    senders: dict[str, Any] = {}

    def register(ev: dict[str, Any], ctx: Any) -> None:
        emit = ctx.emit
        senders[ev["who"]] = lambda body: emit("response", {"body": body})

    def broadcast(ev: dict[str, Any], ctx: Any) -> None:
        for send in senders.values():
            send(ev["text"])

    trigger = make_node("t", register, outputs=("req", "msg"))
    engine = _engine(
        [trigger, make_node("reg", register), make_node("cast", broadcast)],
        "t.req -> reg.in",
        "t.msg -> cast.in",
    )
    alice, bob = RecordingInvocation("alice"), RecordingInvocation("bob")

    async def run() -> None:
        await engine.fire(trigger, "req", {"who": "alice"}, alice)
        await engine.fire(trigger, "req", {"who": "bob"}, bob)
        await engine.fire(trigger, "msg", {"text": "hello"}, bob)

    asyncio.run(run())
    assert alice.emitted == [("response", {"body": "hello"})]
    assert bob.emitted == [("response", {"body": "hello"})]


def test_drain_cancels_work_that_outlives_its_timeout() -> None:
    async def run() -> tuple[bool, bool]:
        engine = _engine([])
        finished = asyncio.Event()

        async def forever() -> None:
            await asyncio.sleep(60)
            finished.set()

        engine.spawn(forever())
        return await engine.drain(timeout=0.05), finished.is_set()

    assert asyncio.run(run()) == (False, False)


def test_state_is_a_clear_error_when_the_app_has_no_store() -> None:
    engine = _engine([])
    with pytest.raises(RuntimeError, match="without a state store"):
        engine.state.get("k")  # type: ignore[unused-coroutine]  # raises before a coroutine
