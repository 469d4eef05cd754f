"""Runs a loaded flow: node setup, the shared listener, triggers, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from lolo_runtime.context import SetupContext
from lolo_runtime.engine import Engine
from lolo_runtime.loader import Flow
from lolo_runtime.node import Trigger
from lolo_runtime.server import HttpServer
from lolo_runtime.state import StateBackend, StateError

log = logging.getLogger("lolo.runtime")


class StartupError(Exception):
    """The app could not start: a node's setup failed or the state store would not open."""


class Runtime:
    """One running app. ``start`` brings it up in order; ``stop`` takes it down in reverse."""

    def __init__(
        self,
        flow: Flow,
        host: str = "127.0.0.1",
        port: int = 4000,
        state: StateBackend | None = None,
        shutdown_timeout: float = 10.0,
    ):
        self.flow = flow
        self.backend = state
        app_state = state.for_app(flow.app) if state is not None else None
        self.engine = Engine(flow.app, flow.nodes, flow.table, flow.env, app_state, state)
        self.http = HttpServer(host, port)
        self.shutdown_timeout = shutdown_timeout
        self._triggers = [node for node in flow.nodes.values() if isinstance(node, Trigger)]
        self._set_up: list[str] = []

    async def start(self) -> None:
        """Open the state store, set every node up, then start the triggers, then listen."""
        if self.backend is not None:
            try:
                await self.backend.open()
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
        for trigger in self._triggers:
            await trigger.start(self)
        if any(trigger.http_path is not None for trigger in self._triggers):
            await self.http.start()

    async def stop(self) -> None:
        """Stop triggers, close clients (1001), let in-flight chains finish, close nodes."""
        for trigger in self._triggers:
            await _bounded(trigger.stop(), trigger.close_timeout, f"stopping {trigger.id}")
        await self.http.stop(self.shutdown_timeout)
        if not await self.engine.drain(self.shutdown_timeout):
            log.warning("background work cancelled after %.1fs", self.shutdown_timeout)
        for node_id in reversed(self._set_up):
            node = self.flow.nodes[node_id]
            await _bounded(node.close(), node.close_timeout, f"closing {node_id}")
        if self.backend is not None:
            await self.backend.close()

    async def serve_until_signalled(self, on_listening: Callable[[int], None]) -> None:
        """Start, report the bound port, run until SIGINT/SIGTERM, then stop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await self.start()
            on_listening(self.http.bound_port)
            await stop.wait()
            log.info("shutting down")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self.stop()


async def _bounded(work: object, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(work, timeout)  # type: ignore[arg-type]
    except TimeoutError:
        log.warning("%s took longer than %.1fs; moving on", what, timeout)
    except Exception:
        log.exception("%s failed", what)
