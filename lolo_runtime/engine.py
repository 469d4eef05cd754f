"""The engine: carries events along edges and runs handlers, keeping failures contained.

Guarantees (see docs/architecture.md):

* A trigger awaits :meth:`Engine.fire` for one event before it reads the next from the
  same client, and a chain runs depth first, so events from one client are handled in
  the order sent, end to end.
* Routed events are delivered after their handler returns, in the order routed. An
  event routed to several in-ports reaches them concurrently, as the *same* dict: the
  engine never copies events.
* A handler that raises is logged with its node id and session id, its branch stops,
  and the invocation is told (a WebSocket ``req`` chain refuses the handshake); nothing
  else is disturbed and no task is left with an unretrieved exception.
* With ``--inspect``, :meth:`Engine.meter_with` puts counting versions of ``fire``,
  ``_call`` and ``_handler_failed`` on the engine object; without it the class's own
  methods run, with no check for a meter on the hot path.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from lolo_runtime.channels.hub import Hub
from lolo_runtime.context import Context
from lolo_runtime.deadlines import Deadlines
from lolo_runtime.errors import HandlerTimeout, Reject
from lolo_runtime.node import Node
from lolo_runtime.routing import RoutingTable
from lolo_runtime.types import Event, Invocation, StateAPI

if TYPE_CHECKING:
    from lolo_runtime.inspector.meter import Meter
    from lolo_runtime.state import StateBackend
    from lolo_runtime.watchdog import LoopWatchdog

log = logging.getLogger("lolo.engine")

# (node, in-port, whether its handle() must be awaited)
_Target = tuple[Node, str, bool]


class NoState:
    """``ctx.state`` when the app runs without a store: every use says why it fails."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("this app was started without a state store")


class Wiring:
    """One version of an app's graph: its nodes, and for each out-port the in-ports wired
    to it, fixed once made; ``running`` counts the chains travelling it now."""

    __slots__ = ("idle", "nodes", "running", "targets")

    def __init__(self, nodes: Mapping[str, Node], table: RoutingTable):
        self.nodes = dict(nodes)
        is_async = {
            node_id: inspect.iscoroutinefunction(node.handle) for node_id, node in nodes.items()
        }
        self.targets: dict[tuple[str, str], tuple[_Target, ...]] = {
            source: tuple((self.nodes[nid], port, is_async[nid]) for nid, port in targets)
            for source, targets in table.as_dict().items()
        }
        self.running = 0
        self.idle: asyncio.Event | None = None

    async def finished(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the chains on this wiring to end (after a
        swap no new ones start on it); return whether they all did."""
        if not self.running:
            return True
        if self.idle is None:  # one event, however many wait
            self.idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self.idle.wait()
        except TimeoutError:
            return False
        return True


class Engine:
    """Runs one app's nodes. Pure dispatch: it opens no sockets itself."""

    def __init__(
        self,
        app: str,
        nodes: Mapping[str, Node],
        table: RoutingTable,
        env: Mapping[str, str] | None = None,
        state: StateAPI | None = None,
        backend: StateBackend | None = None,
        channels: Hub | None = None,
    ):
        self.app = app
        self.env: dict[str, str] = dict(env or {})
        self.state: StateAPI = state if state is not None else NoState()
        self.backend: StateBackend = backend if backend is not None else NoState()  # type: ignore[assignment]
        self.watchdog: LoopWatchdog | None = None
        """Set by the runtime: how long the loop was stalled (clients are not blamed)."""
        self.channels = channels if channels is not None else Hub()
        """Live sessions and channels (ctx.join/publish/send): in memory, or over Redis."""
        self.wiring = Wiring(nodes, table)
        """The graph events travel now; ``--reload`` swaps in a new one (:meth:`swap`)."""
        self._background: set[asyncio.Task[None]] = set()
        self._deadlines = Deadlines()
        self.meter: Meter | None = None
        """The inspector's counters (:meth:`meter_with`); None: nothing is counted."""

    def meter_with(self, meter: Meter) -> None:
        """Count every handler call (its time, whether it failed) and every event that
        leaves an out-port, into ``meter`` (``--inspect``).

        The counting versions of :meth:`fire`, :meth:`_call` and :meth:`_handler_failed`
        are put on this engine object in place of the class's own, so an engine without a
        meter runs the plain methods and does no extra work at all, not even a check."""
        self.meter = meter
        self.fire = self._metered_fire  # type: ignore[method-assign]
        self._call = self._metered_call  # type: ignore[method-assign]
        self._handler_failed = self._metered_failed  # type: ignore[method-assign]

    @property
    def nodes(self) -> dict[str, Node]:
        return self.wiring.nodes

    def swap(self, nodes: Mapping[str, Node], table: RoutingTable) -> Wiring:
        """Make ``nodes`` and ``table`` the graph that new chains travel, and return the
        old one: chains already running finish on it (:meth:`Wiring.finished`)."""
        old, self.wiring = self.wiring, Wiring(nodes, table)
        return old

    async def fire(self, node: Node, port: str, ev: Event, invocation: Invocation) -> None:
        """Send ``ev`` out of ``node.port`` to every in-port wired to it; never raises.

        A chain starts here and travels the wiring of its start to its end, even when a
        reload swaps in another one meanwhile."""
        wiring = self.wiring
        targets = wiring.targets.get((node.id, port))
        if not targets:
            return
        wiring.running += 1
        try:
            await self._fire_to(wiring, targets, ev, invocation)
        finally:
            wiring.running -= 1
            if not wiring.running and wiring.idle is not None:
                wiring.idle.set()

    async def _fire_to(
        self,
        wiring: Wiring,
        targets: tuple[_Target, ...],
        ev: Event,
        invocation: Invocation,
    ) -> None:
        if len(targets) == 1:
            target, in_port, is_async = targets[0]
            await self._deliver(wiring, target, in_port, is_async, ev, invocation)
        else:
            await asyncio.gather(
                *(self._deliver(wiring, t, p, a, ev, invocation) for t, p, a in targets)
            )

    async def _deliver(
        self,
        wiring: Wiring,
        node: Node,
        in_port: str,
        is_async: bool,
        ev: Event,
        invocation: Invocation,
    ) -> None:
        routed = await self._call(node, in_port, is_async, ev, invocation)
        if routed:
            for out_port, out_ev in routed:
                targets = wiring.targets.get((node.id, out_port))
                if targets:
                    await self._fire_to(wiring, targets, out_ev, invocation)

    async def _call(
        self, node: Node, in_port: str, is_async: bool, ev: Event, invocation: Invocation
    ) -> list[tuple[str, Event]] | None:
        """Run the node's handler once; return what it routed (None if it raised)."""
        ctx = Context(self, node, in_port, invocation)
        try:
            if is_async:
                if node.call_timeout is None:
                    await node.handle(ev, ctx)
                else:
                    await self._deadlines.run(node.call_timeout, node.handle(ev, ctx))
            else:
                # A plain ``def``, or a wrapper around an async handler that hides it.
                result = node.handle(ev, ctx)
                if result is not None and inspect.isawaitable(result):
                    if node.call_timeout is None:
                        await result
                    else:
                        await self._deadlines.run(node.call_timeout, result)
        except Exception as error:
            ctx.take_routed()
            self._handler_failed(node, invocation, error)
            return None
        return ctx.take_routed()

    async def inject(
        self, node_id: str, in_port: str, ev: Event, invocation: Invocation
    ) -> list[tuple[str, Event]] | None:
        """Deliver ``ev`` to one node's in-port, as if an edge had carried it, and return
        what the handler routed instead of carrying it on (None if the handler raised).
        For tests (:mod:`lolo_runtime.testing`): it runs one node in isolation."""
        node = self.nodes.get(node_id)
        if node is None:
            raise KeyError(f"no node {node_id!r}; nodes: {', '.join(self.nodes)}")
        if in_port not in node.in_ports:
            raise KeyError(
                f"node {node_id!r} has no in-port {in_port!r}; "
                f"its in-ports are: {', '.join(node.in_ports) or '(none)'}"
            )
        is_async = inspect.iscoroutinefunction(node.handle)
        return await self._call(node, in_port, is_async, ev, invocation)

    # The counting versions of fire, _call and _handler_failed (see meter_with).

    async def _metered_fire(self, node: Node, port: str, ev: Event, invocation: Invocation) -> None:
        assert self.meter is not None
        self.meter.sent(node.id, port)
        await Engine.fire(self, node, port, ev, invocation)

    async def _metered_call(
        self, node: Node, in_port: str, is_async: bool, ev: Event, invocation: Invocation
    ) -> list[tuple[str, Event]] | None:
        meter = self.meter
        assert meter is not None
        started = time.perf_counter()
        routed = await Engine._call(self, node, in_port, is_async, ev, invocation)
        meter.called(node.id, started, time.perf_counter())
        if routed:
            for out_port, _ in routed:
                meter.sent(node.id, out_port)
        return routed

    def _metered_failed(self, node: Node, invocation: Invocation, error: Exception) -> None:
        assert self.meter is not None
        if not isinstance(error, Reject):  # a deliberate "no" (an auth node) is no error
            self.meter.failed(node.id)
        Engine._handler_failed(self, node, invocation, error)

    def _handler_failed(self, node: Node, invocation: Invocation, error: Exception) -> None:
        tags = {"app": self.app, "node": node.id, "session": invocation.session_id}
        if isinstance(error, Reject):
            # A deliberate stop (an auth node saying no), not a bug: no traceback.
            log.info("chain stopped: %s", error, extra=tags)
        elif isinstance(error, HandlerTimeout):
            log.error("%s", error, extra=tags)
        else:
            log.error(
                "handler raised %s: %s", type(error).__name__, error, exc_info=error, extra=tags
            )
        try:
            invocation.fail(node.id, error)
        except Exception:
            log.exception("invocation could not be told of a failure")

    def is_wired(self, node_id: str, port: str) -> bool:
        """Whether any edge leaves ``node_id.port`` (``fire`` on a port that none leaves
        returns at once, and the event is gone)."""
        return (node_id, port) in self.wiring.targets

    def route_later(self, node: Node, port: str, ev: Event, invocation: Invocation) -> None:
        """A route made after its handler returned: deliver it as a chain of its own."""
        self.spawn(self.fire(node, port, ev, invocation))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, tracked so shutdown can wait for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    @property
    def in_background(self) -> int:
        """How many chains run in the background now (late routes, close chains, timer
        ticks): tests wait for it to reach 0."""
        return len(self._background)

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for background work; cancel what is left.

        Returns whether everything finished in time.
        """
        pending = set(self._background)
        if not pending:
            return True
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        return not late
