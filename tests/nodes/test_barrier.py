"""``lolo/barrier`` on a real engine with real nodes, no sockets (the e2e tests are in
tests/e2e/test_barrier.py). "Slow" tasks wait on an event that never comes, so the timeout
paths do not depend on how fast the machine is."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lolo_runtime.context import Context, SetupContext
from lolo_runtime.engine import Engine
from lolo_runtime.errors import FlowErrors
from lolo_runtime.loader import load_flow
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.nodes.barrier import BarrierNode, BarrierParams
from lolo_runtime.ports import Ports
from lolo_runtime.routing import RoutingTable
from tests.nodes_for_tests import RecordingInvocation, edges, make_node

Handler = Callable[[dict[str, Any], Context], Awaitable[None]]


def barrier(
    node_id: str = "b", outputs: Sequence[str] = ("out", "a", "b"), timeout: float = 5
) -> BarrierNode:
    return BarrierNode(
        NodeConfig(
            id=node_id,
            type="lolo/barrier",
            name=node_id,
            params=BarrierParams(timeout=timeout),
            inputs=Ports(["in"]),
            outputs=Ports(outputs),
            handler=None,
            flow_dir=Path("."),
        )
    )


def done_with(tag: str, value: Callable[[dict[str, Any]], Any]) -> Handler:
    async def task(ev: dict[str, Any], ctx: Context) -> None:
        ctx.emit(f"{tag}_done", value(ev))

    return task


async def never(ev: dict[str, Any], ctx: Context) -> None:
    """A task that never says it is done (its chain ends without a word)."""


class Flow:
    """A trigger stand-in ``t`` wired to the nodes, plus two sinks, ``done`` and ``late``,
    that record what reaches them and answer the invocation."""

    def __init__(self, nodes: Sequence[Node], *wires: str):
        self.sunk: list[tuple[str, Any]] = []
        self.trigger = make_node("t", never)
        every = [self.trigger, *nodes, self._sink("done"), self._sink("late")]
        self.engine = Engine("app", {n.id: n for n in every}, RoutingTable(edges(*wires)))

    def _sink(self, node_id: str) -> Node:
        async def record(ev: dict[str, Any], ctx: Context) -> None:
            self.sunk.append((node_id, ev))
            ctx.emit("response", {"from": node_id})

        return make_node(node_id, record, outputs=())

    async def setup(self) -> None:
        for node in self.engine.nodes.values():
            await node.setup(SetupContext(self.engine, node))

    async def fire(self, ev: dict[str, Any], invocation: RecordingInvocation) -> None:
        await self.engine.fire(self.trigger, "out", ev, invocation)
        await self.engine.drain(5)


def build(
    tasks: dict[str, Handler], outputs: Sequence[str] | None = None, timeout: float = 5
) -> Flow:
    """t -> barrier b; each tag -> its task; out -> done (and timeout, if declared -> late)."""
    node = barrier(outputs=outputs or ("out", *tasks), timeout=timeout)
    nodes: list[Node] = [node, *(make_node(f"task-{t}", h, outputs=()) for t, h in tasks.items())]
    wires = ["t.out -> b.in", *(f"b.{t} -> task-{t}.in" for t in tasks), "b.out -> done.in"]
    if "timeout" in node.out_ports:
        wires.append("b.timeout -> late.in")
    return Flow(nodes, *wires)


def test_the_results_go_out_together_keyed_by_tag_in_port_order() -> None:
    async def main() -> None:
        flow = build(
            {
                "user": done_with("user", lambda ev: {"name": f"user {ev['id']}"}),
                "orders": done_with("orders", lambda ev: [ev["id"], 2]),
            }
        )
        await flow.setup()
        invocation = RecordingInvocation()
        await flow.fire({"id": 7}, invocation)
        assert flow.sunk == [("done", {"user": {"name": "user 7"}, "orders": [7, 2]})]
        # The out chain runs on the original invocation: its response reaches the trigger.
        assert invocation.emitted == [("response", {"from": "done"})]
        assert invocation.failures == []

    asyncio.run(main())


def test_tasks_run_at_the_same_time_and_a_slow_one_is_awaited() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def first(ev: dict[str, Any], ctx: Context) -> None:
            await asyncio.wait_for(gate.wait(), 2)  # only opens if 'second' runs meanwhile
            await asyncio.sleep(0.2)
            ctx.emit("first_done", "slow")

        async def second(ev: dict[str, Any], ctx: Context) -> None:
            gate.set()
            ctx.emit("second_done", "fast")

        flow = build({"first": first, "second": second})
        await flow.setup()
        started = time.monotonic()
        await flow.fire({}, RecordingInvocation())
        assert time.monotonic() - started >= 0.2
        assert flow.sunk == [("done", {"first": "slow", "second": "fast"})]

    asyncio.run(main())


def test_done_may_come_later_from_a_kept_emit_and_from_further_down_the_chain() -> None:
    async def main() -> None:
        async def later(ev: dict[str, Any], ctx: Context) -> None:
            emit = ctx.emit  # kept, and called after the handler has returned
            asyncio.get_running_loop().call_later(0.05, emit, "a_done", "from a timer")

        async def step(ev: dict[str, Any], ctx: Context) -> None:
            ctx.route({"n": 1})

        async def end(ev: dict[str, Any], ctx: Context) -> None:
            ctx.emit("b_done", f"end of chain {ev['n']}")

        flow = Flow(
            [barrier(), make_node("a", later), make_node("b1", step), make_node("b2", end)],
            *("t.out -> b.in", "b.a -> a.in", "b.b -> b1.in", "b1.out -> b2.in"),
            "b.out -> done.in",
        )
        await flow.setup()
        await flow.fire({}, RecordingInvocation())
        assert flow.sunk == [("done", {"a": "from a timer", "b": "end of chain 1"})]

    asyncio.run(main())


def test_other_emits_of_the_tasks_reach_the_invocation() -> None:
    async def main() -> None:
        async def chatty(ev: dict[str, Any], ctx: Context) -> None:
            ctx.emit("response", {"body": "early"})
            ctx.emit("zzz_done", "not a tag of this barrier")
            ctx.emit("a_done", 1)

        flow = build({"a": chatty})
        await flow.setup()
        invocation = RecordingInvocation()
        await flow.fire({}, invocation)
        assert invocation.emitted == [
            ("response", {"body": "early"}),
            ("zzz_done", "not a tag of this barrier"),
            ("response", {"from": "done"}),
        ]
        assert flow.sunk == [("done", {"a": 1})]

    asyncio.run(main())


def test_the_first_done_of_a_tag_wins() -> None:
    async def main() -> None:
        async def twice(ev: dict[str, Any], ctx: Context) -> None:
            ctx.emit("a_done", "first")
            ctx.emit("a_done", "second")

        flow = build({"a": twice, "b": done_with("b", lambda ev: "b")})
        await flow.setup()
        await flow.fire({}, RecordingInvocation())
        assert flow.sunk == [("done", {"a": "first", "b": "b"})]

    asyncio.run(main())


def test_each_event_gathers_its_own_results() -> None:
    async def main() -> None:
        async def echo_later(ev: dict[str, Any], ctx: Context) -> None:
            await asyncio.sleep(0.01 * (5 - ev["n"]))  # the first event finishes last
            ctx.emit("a_done", ev["n"])

        flow = build({"a": echo_later, "b": done_with("b", lambda ev: -ev["n"])})
        await flow.setup()
        await asyncio.gather(*(flow.fire({"n": n}, RecordingInvocation(f"s{n}")) for n in range(5)))
        assert sorted(ev["a"] for _, ev in flow.sunk) == list(range(5))
        assert all(ev["b"] == -ev["a"] for _, ev in flow.sunk)

    asyncio.run(main())


def test_without_tasks_the_event_goes_straight_out_unchanged() -> None:
    async def main() -> None:
        flow = build({}, outputs=("out",))
        await flow.setup()
        event = {"x": 1}
        await flow.fire(event, RecordingInvocation())
        assert flow.sunk == [("done", event)]
        assert flow.sunk[0][1] is event

    asyncio.run(main())


def test_a_timeout_without_a_timeout_port_drops_the_event_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> float:
        flow = build({"a": done_with("a", lambda ev: 1), "slow": never}, timeout=0.2)
        await flow.setup()
        started = time.monotonic()
        await flow.fire({}, RecordingInvocation())
        assert flow.sunk == []
        return time.monotonic() - started

    with caplog.at_level(logging.INFO):
        took = asyncio.run(main())
    assert 0.2 <= took < 2
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "task(s) slow not done within 0.2s" in warning.getMessage()
    assert "dropped" in warning.getMessage()
    assert getattr(warning, "node", None) == "b"


def test_a_timeout_port_gets_the_results_so_far() -> None:
    async def main() -> None:
        flow = build(
            {"a": done_with("a", lambda ev: "A"), "slow": never, "c": done_with("c", lambda ev: 3)},
            outputs=("out", "a", "slow", "timeout", "c"),
            timeout=0.2,
        )
        await flow.setup()
        invocation = RecordingInvocation()
        await flow.fire({}, invocation)
        assert flow.sunk == [("late", {"a": "A", "c": 3})]
        assert invocation.emitted == [("response", {"from": "late"})]

    asyncio.run(main())


def test_a_done_after_the_timeout_is_ignored() -> None:
    async def main() -> None:
        async def too_late(ev: dict[str, Any], ctx: Context) -> None:
            await asyncio.sleep(0.3)
            ctx.emit("a_done", "late")

        flow = build({"a": too_late}, outputs=("out", "a", "timeout"), timeout=0.1)
        await flow.setup()
        invocation = RecordingInvocation()
        await flow.fire({}, invocation)  # drains the late task too
        assert flow.sunk == [("late", {})]
        assert invocation.emitted == [("response", {"from": "late"})]

    asyncio.run(main())


def test_a_failing_task_ends_the_wait_at_once_and_fails_the_invocation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> float:
        async def broken(ev: dict[str, Any], ctx: Context) -> None:
            raise RuntimeError("lookup failed")

        flow = build({"a": broken, "slow": never}, timeout=5)
        await flow.setup()
        invocation = RecordingInvocation()
        started = time.monotonic()
        await flow.fire({}, invocation)
        assert flow.sunk == []
        assert [(node, str(error)) for node, error in invocation.failures] == [
            ("task-a", "lookup failed")
        ]
        return time.monotonic() - started

    with caplog.at_level(logging.INFO):
        assert asyncio.run(main()) < 2
    assert any(
        "task 'a' failed in node 'task-a'; event dropped" in r.getMessage() for r in caplog.records
    )


def test_a_task_failing_after_it_was_done_does_not_stop_the_barrier() -> None:
    async def main() -> None:
        async def done_then_broken(ev: dict[str, Any], ctx: Context) -> None:
            ctx.emit("a_done", "A")
            raise RuntimeError("after the fact")

        flow = build({"a": done_then_broken, "b": done_with("b", lambda ev: "B")})
        await flow.setup()
        invocation = RecordingInvocation()
        await flow.fire({}, invocation)
        assert flow.sunk == [("done", {"a": "A", "b": "B"})]
        assert len(invocation.failures) == 1  # still told: its chain did raise

    asyncio.run(main())


def test_barriers_nest() -> None:
    """The inner barrier's tasks run on wrappers of the outer's: both see their own dones."""

    async def main() -> None:
        inner = barrier("inner", outputs=("out", "x", "y"))

        async def inner_done(ev: dict[str, Any], ctx: Context) -> None:
            ctx.emit("outer_done", {"inner": ev})  # an outer tag, from the inner out chain

        nodes: list[Node] = [
            barrier("b", outputs=("out", "outer", "other")),
            inner,
            make_node("x", done_with("x", lambda ev: "X")),
            make_node("y", done_with("y", lambda ev: "Y")),
            make_node("fin", inner_done, outputs=()),
            make_node("other", done_with("other", lambda ev: "O")),
        ]
        wires = [
            "t.out -> b.in",
            "b.outer -> inner.in",
            "b.other -> other.in",
            "inner.x -> x.in",
            "inner.y -> y.in",
            "inner.out -> fin.in",
            "b.out -> done.in",
        ]
        flow = Flow(nodes, *wires)
        await flow.setup()
        await flow.fire({}, RecordingInvocation())
        assert flow.sunk == [("done", {"outer": {"inner": {"x": "X", "y": "Y"}}, "other": "O"})]

    asyncio.run(main())


def test_a_task_port_wired_to_nothing_stops_the_app_at_setup() -> None:
    async def main() -> None:
        node = barrier(outputs=("out", "a", "b"))
        flow = Flow([node, make_node("task-a", never)], "t.out -> b.in", "b.a -> task-a.in")
        with pytest.raises(ValueError, match=r"task port\(s\) 'b' lead nowhere"):
            await node.setup(SetupContext(flow.engine, node))

    asyncio.run(main())


def test_an_unwired_timeout_port_is_warned_about_and_late_events_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        node = barrier(outputs=("out", "slow", "timeout"), timeout=0.1)
        flow = Flow([node, make_node("s", never)], "t.out -> b.in", "b.slow -> s.in")
        await flow.setup()
        await flow.fire({}, RecordingInvocation())

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("'timeout' out-port is wired to nothing" in m for m in messages)
    assert any("the event is dropped" in m for m in messages)


@pytest.mark.parametrize(
    ("ports", "complaint"),
    [
        ("inputs: [in, more]", "exactly one in-port, 'in' (not in, more)"),
        ("inputs: [start]", "exactly one in-port"),
        ("outputs: [a, b]", "needs an out-port 'out'"),
        ("params: {timeout: 0}", "params.timeout: Input should be greater than 0"),
        ("params: {wait: 3}", "unknown param 'wait'"),
    ],
)
def test_port_and_param_mistakes_are_flow_errors_at_their_line(
    tmp_path: Path, ports: str, complaint: str
) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "app: bad\nnodes:\n"
        "  - id: http\n    type: lolo/http-trigger\n    params: {path: /x}\n"
        f"  - id: b\n    type: lolo/barrier\n    {ports}\n"
        "edges:\n  - http.out -> b.in\n"
    )
    with pytest.raises(FlowErrors) as caught:
        load_flow(flow)
    assert complaint in str(caught.value)
    assert "flow.yaml:8: node 'b': " in str(caught.value)
