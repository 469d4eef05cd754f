"""``ctx``: what a handler gets beside its event."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from lolo_runtime.errors import RouteError
from lolo_runtime.logs import NodeLog
from lolo_runtime.ports import Ports
from lolo_runtime.types import Event, Invocation, StateAPI

if TYPE_CHECKING:
    from lolo_runtime.state import StateBackend

if TYPE_CHECKING:
    from lolo_runtime.engine import Engine
    from lolo_runtime.node import Node

_DONE: list[tuple[str, Event]] = []
"""Marks a context whose handler has returned: later routes start chains of their own."""


class SetupContext:
    """``ctx`` of a node's ``setup``: everything but events."""

    __slots__ = ("_engine", "_node")

    def __init__(self, engine: Engine, node: Node):
        self._engine = engine
        self._node = node

    @property
    def app(self) -> str:
        return self._engine.app

    @property
    def node_id(self) -> str:
        return self._node.id

    @property
    def params(self) -> Any:
        return self._node.params

    @property
    def env(self) -> dict[str, str]:
        return self._engine.env

    @property
    def state(self) -> StateAPI:
        return self._engine.state

    @property
    def state_backend(self) -> StateBackend:
        """The store behind ``state``, across apps: for node types such as ``lolo/api-auth``
        that keep records outside the app's namespace. Handlers use ``state``."""
        return self._engine.backend

    @property
    def inputs(self) -> Ports:
        return self._node.in_ports

    @property
    def outputs(self) -> Ports:
        return self._node.out_ports

    @property
    def log(self) -> NodeLog:
        return NodeLog(self._engine.app, self._node.id, None)

    def is_connected(self, session_id: str) -> bool:
        """Whether a client with this session id is connected to this process now."""
        return self._engine.channels.is_local(session_id)

    def is_wired(self, port: str) -> bool:
        """Whether an edge leaves this node's out-port ``port``. For node types that wait
        for what comes back from a port (``lolo/barrier``) or answer for it when nothing
        would (``lolo/http-multi-trigger``): events sent out of an unwired port vanish."""
        return self._engine.is_wired(self._node.id, port)


class Context(SetupContext):
    """``ctx`` of one delivery: which port the event came in by, and how to send it on.

    ``route`` queues events that the engine delivers, in order, once the handler has
    returned; called after that (from a closure kept for later) it starts a new chain.
    ``emit`` goes straight to the trigger invocation that started the chain and keeps
    working for as long as that invocation lives (a WebSocket connection, say).
    """

    __slots__ = ("_invocation", "_routed", "input")

    def __init__(self, engine: Engine, node: Node, input_port: str, invocation: Invocation):
        super().__init__(engine, node)
        self.input = input_port
        self._invocation = invocation
        self._routed: list[tuple[str, Event]] | None = None

    @property
    def session_id(self) -> str:
        return self._invocation.session_id

    @property
    def log(self) -> NodeLog:
        return NodeLog(self._engine.app, self._node.id, self._invocation.session_id)

    def route(self, ev: Event, port: str | None = None) -> None:
        """Send ``ev`` out of ``port`` (the node's only out-port when omitted)."""
        node = self._node
        if port is None:
            port = _default_port(node)
        elif port not in node.out_ports:
            raise RouteError(
                f"node {node.id!r} has no out-port {port!r}; "
                f"its out-ports are: {', '.join(node.out_ports) or '(none)'}"
            )
        routed = self._routed
        if routed is None:
            self._routed = [(port, ev)]
        elif routed is _DONE:
            self._engine.route_later(node, port, ev, self._invocation)
        else:
            routed.append((port, ev))

    def emit(self, name: str, payload: Any = None) -> None:
        """Fire ``name`` (usually ``"response"``) at the invocation that started the chain."""
        self._invocation.emit(name, payload)

    @property
    def invocation(self) -> Invocation:
        """The trigger invocation this chain belongs to (what ``emit`` talks to)."""
        return self._invocation

    def start_chain(self, ev: Event, port: str, invocation: Invocation) -> None:
        """Send ``ev`` out of ``port`` now, as a chain of its own running in the background,
        on behalf of ``invocation`` (usually a wrapper around :attr:`invocation` that
        catches some of the chain's emits). For node types that run several chains at once
        and wait for them (``lolo/barrier``); ``route`` would run them one after another,
        after the handler returns."""
        if port not in self._node.out_ports:
            raise RouteError(
                f"node {self._node.id!r} has no out-port {port!r}; "
                f"its out-ports are: {', '.join(self._node.out_ports) or '(none)'}"
            )
        self._engine.route_later(self._node, port, ev, invocation)

    # Channels (docs/channels.md): reach clients wherever they are connected.

    async def join(self, channel: str) -> None:
        """Add this chain's client to ``channel``; it leaves every channel when it goes."""
        await self._engine.channels.join(self._invocation.session_id, channel)

    async def leave(self, channel: str) -> None:
        """Take this chain's client out of ``channel``."""
        await self._engine.channels.leave(self._invocation.session_id, channel)

    def publish(
        self, channel: str, body: Any, exclude: str | Collection[str] | None = None
    ) -> None:
        """Send ``body`` (str: text, bytes: binary, else JSON) to every member of
        ``channel``, in every process of the app, but the session id(s) in ``exclude``."""
        self._engine.channels.publish(channel, body, exclude)

    def send(self, session_id: str, body: Any) -> None:
        """Send ``body`` to one client, by session id, in whichever process holds it."""
        self._engine.channels.send(session_id, body)

    def take_routed(self) -> list[tuple[str, Event]] | None:
        """Hand the queued routes to the engine; later ``route`` calls start new chains."""
        routed = self._routed
        self._routed = _DONE
        return routed


def _default_port(node: Node) -> str:
    ports = node.out_ports
    if len(ports) == 1:
        return next(iter(ports))
    if "out" in ports:
        return "out"
    raise RouteError(
        f"node {node.id!r} has {len(ports) or 'no'} out-ports"
        f"{': ' + ', '.join(ports) if len(ports) else ''}; name one in ctx.route(ev, port)"
    )
