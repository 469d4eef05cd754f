"""Routing decisions, with no sockets and no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from lolo_runtime.context import Context
from lolo_runtime.engine import Engine
from lolo_runtime.errors import RouteError
from lolo_runtime.routing import RoutingTable
from tests.nodes_for_tests import RecordingInvocation, edges, make_node


def _noop(ev: dict[str, Any], ctx: Any) -> None:
    return None


def test_targets_follow_edges_in_file_order() -> None:
    table = RoutingTable(edges("a.out -> c.in", "a.out -> b.in", "a.err -> d.x"))
    assert table.targets("a", "out") == (("c", "in"), ("b", "in"))
    assert table.targets("a", "err") == (("d", "x"),)


def test_unwired_port_has_no_targets() -> None:
    table = RoutingTable(edges("a.out -> b.in"))
    assert table.targets("a", "other") == ()
    assert table.targets("b", "out") == ()


def test_an_edge_listed_twice_delivers_once() -> None:
    table = RoutingTable(edges("a.out -> b.in", "a.out -> b.in"))
    assert table.targets("a", "out") == (("b", "in"),)


def _context(outputs: tuple[str, ...]) -> tuple[Context, RecordingInvocation]:
    node = make_node("n", _noop, inputs=("req", "msg"), outputs=outputs)
    engine = Engine("app", {"n": node}, RoutingTable([]))
    invocation = RecordingInvocation()
    return Context(engine, node, "msg", invocation), invocation


def test_route_queues_events_in_order_until_the_engine_takes_them() -> None:
    ctx, _ = _context(("a", "b"))
    first, second = {"n": 1}, {"n": 2}
    ctx.route(first, "b")
    ctx.route(second, "a")
    routed = ctx.take_routed()
    assert routed is not None
    assert [(port, ev) for port, ev in routed] == [("b", first), ("a", second)]
    assert routed[0][1] is first  # the same object: events are not copied


def test_route_without_a_port_uses_the_only_out_port() -> None:
    ctx, _ = _context(("only",))
    ctx.route({"x": 1})
    assert ctx.take_routed() == [("only", {"x": 1})]


def test_route_without_a_port_prefers_out_among_several() -> None:
    ctx, _ = _context(("err", "out"))
    ctx.route({})
    assert ctx.take_routed() == [("out", {})]


def test_route_without_a_port_is_ambiguous_among_several_others() -> None:
    ctx, _ = _context(("left", "right"))
    with pytest.raises(RouteError, match=r"node 'n' has 2 out-ports: left, right"):
        ctx.route({})


def test_route_to_an_unknown_port_names_the_node_and_its_ports() -> None:
    ctx, _ = _context(("req", "msg"))
    with pytest.raises(RouteError) as raised:
        ctx.route({}, "mgs")
    assert str(raised.value) == "node 'n' has no out-port 'mgs'; its out-ports are: req, msg"


def test_input_and_inputs_read_like_the_tutorial() -> None:
    ctx, _ = _context(("out",))
    assert ctx.input == ctx.inputs.msg
    assert ctx.input != ctx.inputs.req
    with pytest.raises(AttributeError, match="the ports are req, msg"):
        _ = ctx.inputs.close


def test_emit_goes_straight_to_the_invocation() -> None:
    ctx, invocation = _context(("out",))
    ctx.emit("response", {"body": "hi"})
    assert invocation.emitted == [("response", {"body": "hi"})]
    assert ctx.session_id == "s1"
