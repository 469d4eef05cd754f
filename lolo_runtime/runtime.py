"""Runs a loaded flow: node setup, the shared listener, triggers, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import CodeType
from typing import TYPE_CHECKING

from lolo_runtime.channels.hub import Hub
from lolo_runtime.context import SetupContext
from lolo_runtime.edge.fdlimit import RESERVED_DESCRIPTORS, raise_descriptor_limit
from lolo_runtime.edge.http1 import HttpLimits
from lolo_runtime.edge.listener import Edge, Listener
from lolo_runtime.edge.proxy import TrustedProxies
from lolo_runtime.edge.types import HttpRoute, WebSocketRoute
from lolo_runtime.engine import Engine
from lolo_runtime.errors import LoloError
from lolo_runtime.health import HEALTH_PATH, Check, HealthRoute
from lolo_runtime.loader import Flow
from lolo_runtime.node import Node, Trigger
from lolo_runtime.openapi import OPENAPI_PATH, OpenApiRoute
from lolo_runtime.state import StateBackend, StateError
from lolo_runtime.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from lolo_runtime.channels.redisbus import RedisBus
    from lolo_runtime.inspector import Inspector

log = logging.getLogger("lolo.runtime")


SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ForcedShutdown(LoloError):
    """A second signal cut a graceful shutdown short."""


class StartupError(LoloError):
    """The app could not start: a node's setup failed or the state store would not open."""


@dataclass(frozen=True)
class ServeOptions:
    """How the app's port is served."""

    host: str = "127.0.0.1"
    port: int = 4000
    ssl_context: ssl.SSLContext | None = None
    trusted_proxies: TrustedProxies | None = None
    shutdown_timeout: float = 10.0
    reuse_port: bool = False
    """Bind with SO_REUSEPORT (worker processes of ``--workers`` share the port)."""
    inspect: bool = False
    """Serve the inspector (``--inspect``) under ``/_lolo/``: see docs/inspector.md."""
    inspect_key: str | None = None
    """The key the inspector asks for ($LOLO_INSPECT_KEY); None: loopback clients only."""
    reload: bool = False
    """Watch the flow file and its handler modules and swap edits in (``--reload``)."""


class Runtime:
    """One running app. ``start`` brings it up in order; ``stop`` takes it down in reverse.

    It is also the :class:`~lolo_runtime.node.TriggerHost` that triggers register with.
    """

    def __init__(
        self,
        flow: Flow,
        options: ServeOptions | None = None,
        state: StateBackend | None = None,
        redis_url: str | None = None,
    ):
        self.flow = flow
        self.options = options or ServeOptions()
        self.backend = state
        app_state = state.for_app(flow.app) if state is not None else None
        self.hub = Hub()
        self.bus: RedisBus | None = None
        if redis_url is not None:
            # Imported only when used: the Redis client adds ~0.1 s to every start-up.
            from lolo_runtime.channels.redisbus import RedisBus

            self.bus = RedisBus(redis_url, flow.app, self.hub)
        self.hub.link = self.bus
        self.engine = Engine(flow.app, flow.nodes, flow.table, flow.env, app_state, state, self.hub)
        self.watchdog = LoopWatchdog(handler_codes(flow.nodes.values()))
        self.engine.watchdog = self.watchdog
        self.shutdown_timeout = self.options.shutdown_timeout
        self.edge: Edge | None = None
        self.listener: Listener | None = None
        self._triggers = [node for node in flow.nodes.values() if isinstance(node, Trigger)]
        self._set_up: list[str] = []
        self.inspector: Inspector | None = None
        if self.options.inspect:
            # Imported only when asked for: off, the inspector costs nothing at all.
            from lolo_runtime.inspector import Inspector

            self.inspector = Inspector(self)

    # TriggerHost

    def add_http_route(self, path: str, route: HttpRoute) -> None:
        assert self.edge is not None
        self.edge.add_http(path, route)

    def add_websocket_route(self, path: str, route: WebSocketRoute) -> None:
        assert self.edge is not None
        self.edge.add_websocket(path, route)

    def adopt_reloaded_flow(self, flow: Flow, set_up_now: Iterable[str]) -> None:
        """``--reload``: ``flow``, whose ``nodes`` are the live ones, is the running version
        now; the nodes named by ``set_up_now`` were just set up (closed first at shutdown)."""
        fresh = list(set_up_now)
        kept = [node_id for node_id in self._set_up if node_id in flow.nodes]
        self._set_up = [node_id for node_id in kept if node_id not in fresh] + fresh
        self.flow = flow
        self._triggers = [node for node in flow.nodes.values() if isinstance(node, Trigger)]
        self.watchdog.set_handlers(handler_codes(flow.nodes.values()))

    @property
    def bound_port(self) -> int:
        return self.listener.bound_port if self.listener is not None else self.options.port

    async def start(self) -> None:
        """Open the state store, set every node up, then start the triggers, then listen."""
        self.watchdog.start()
        try:
            if self.backend is not None:
                await self.backend.open()
            if self.bus is not None:
                await self.bus.start()
        except StateError as exc:
            raise StartupError(str(exc)) from exc
        for node in self.flow.nodes.values():
            try:
                await asyncio.wait_for(
                    node.setup(SetupContext(self.engine, node)), node.setup_timeout
                )
            except TimeoutError as exc:
                raise StartupError(
                    f"node {node.id!r}: setup did not finish within {node.setup_timeout:g}s"
                ) from exc
            except Exception as exc:
                raise StartupError(
                    f"node {node.id!r}: setup failed: {type(exc).__name__}: {exc}"
                ) from exc
            self._set_up.append(node.id)
        listens = self.inspector is not None or any(
            trigger.http_path is not None for trigger in self._triggers
        )
        if listens:
            # The head must arrive before its path (and so its trigger) is known: the
            # most patient WebSocket trigger's open_timeout applies to every request.
            waits = [
                t.params.open_timeout for t in self._triggers if hasattr(t.params, "open_timeout")
            ]
            limits = HttpLimits(head_timeout=max(waits, default=HttpLimits().head_timeout))
            self.edge = Edge(limits, self.options.trusted_proxies, self._descriptor_limit())
        for trigger in self._triggers:
            try:
                await trigger.start(self)
            except Exception as exc:
                raise StartupError(
                    f"node {trigger.id!r}: could not start: {type(exc).__name__}: {exc}"
                ) from exc
        if self.edge is not None:
            self.edge.add_http(HEALTH_PATH, HealthRoute(self.flow.app, self._health_checks()))
            self.edge.add_http(OPENAPI_PATH, OpenApiRoute(self.flow))
            if self.inspector is not None:
                self.inspector.mount(self.edge)
            self.listener = Listener(
                self.edge,
                self.options.host,
                self.options.port,
                self.options.ssl_context,
                reuse_port=self.options.reuse_port,
            )
            await self.listener.start()

    def _health_checks(self) -> list[Check]:
        checks: list[Check] = []
        if self.backend is not None:
            checks.append(self.backend.problem)
        if self.bus is not None:
            checks.append(self.bus.problem)
        return checks

    def _descriptor_limit(self) -> int | None:
        limit = raise_descriptor_limit()
        wanted = sum(getattr(t.params, "max_connections", 0) for t in self._triggers)
        if limit is not None and wanted + RESERVED_DESCRIPTORS > limit:
            log.warning(
                "max_connections adds up to %d but this process may open only %d files "
                "(%d kept in reserve): clients past that get 503; raise the hard limit "
                "('ulimit -Hn', LimitNOFILE=) or lower max_connections",
                wanted,
                limit,
                RESERVED_DESCRIPTORS,
            )
        return limit

    async def stop(self) -> None:
        """Stop triggers, close clients (1001), let in-flight chains finish, close nodes."""
        for trigger in self._triggers:
            await bounded(trigger.stop(), trigger.close_timeout, f"stopping {trigger.id}")
        if self.listener is not None:
            await self.listener.stop(self.shutdown_timeout)
        if not await self.engine.drain(self.shutdown_timeout):
            log.warning("background work cancelled after %.1fs", self.shutdown_timeout)
        for node_id in reversed(self._set_up):
            node = self.flow.nodes[node_id]
            await bounded(node.close(), node.close_timeout, f"closing {node_id}")
        if self.bus is not None:
            await self.bus.stop()
        if self.backend is not None:
            await self.backend.close()
        if self.inspector is not None:
            self.inspector.close()
        self.watchdog.stop()

    async def serve_until_signalled(self, on_listening: Callable[[int | None], None]) -> None:
        """Start, report the bound port (None: no trigger listens, so no port is open,
        e.g. a flow of timers), run until SIGINT, SIGTERM or SIGHUP, then stop
        gracefully; a second signal during that stops at once (:class:`ForcedShutdown`),
        the state store still closed cleanly."""
        loop = asyncio.get_running_loop()
        first, second = asyncio.Event(), asyncio.Event()

        def signalled(signum: int) -> None:
            if first.is_set():
                second.set()
                return
            log.info(
                "%s: shutting down (send it again to stop at once)", signal.Signals(signum).name
            )
            first.set()

        for signum in SHUTDOWN_SIGNALS:
            loop.add_signal_handler(signum, signalled, signum)
        try:
            try:
                await self.start()
            except BaseException:
                await self.stop()  # what start-up opened is closed again
                raise
            # What start-up made (modules, models, the flow) lives as long as the app:
            # keep it out of the collector's way, so full collections stay short.
            gc.collect()
            gc.freeze()
            on_listening(self.bound_port if self.listener is not None else None)
            watching: asyncio.Task[None] | None = None
            if self.options.reload:
                from lolo_runtime.reloading import watch_and_reload

                watching = loop.create_task(watch_and_reload(self, first))
            await first.wait()
            if watching is not None:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            await self._stop_unless_hurried(second)
        finally:
            for signum in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(signum)

    async def _stop_unless_hurried(self, hurry: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(self.stop())
        hurried = loop.create_task(hurry.wait())
        done, _ = await asyncio.wait({stopping, hurried}, return_when=asyncio.FIRST_COMPLETED)
        if stopping in done:
            hurried.cancel()
            stopping.result()
            return
        log.warning("second signal: stopping at once; in-flight handlers are cancelled")
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        if self.backend is not None:
            await self.backend.close()  # commits what was acknowledged, leaves no WAL
        raise ForcedShutdown("stopped at once by a second signal")


def handler_codes(nodes: Iterable[Node]) -> dict[CodeType, list[str]]:
    """Each node's handler code object (what the watchdog looks for on a blocked stack)."""
    codes: dict[CodeType, list[str]] = {}
    for node in nodes:
        handle = getattr(node.handle, "__func__", node.handle)
        code = getattr(handle, "__code__", None)
        if isinstance(code, CodeType):
            codes.setdefault(code, []).append(node.id)
    return codes


async def bounded(work: object, timeout: float, what: str) -> None:
    """Await ``work`` (a node's stop or close) for ``timeout`` seconds at most; log, don't
    raise, when it takes longer or fails: one node must not hold up the others."""
    try:
        await asyncio.wait_for(work, timeout)  # type: ignore[arg-type]
    except TimeoutError:
        log.warning("%s took longer than %.1fs; moving on", what, timeout)
    except Exception:
        log.exception("%s failed", what)
