"""The one listening socket that every HTTP-based trigger of an app shares.

It speaks the WebSocket protocol through the websockets library and hands each
handshake to the trigger registered for the request's path. This module and the
trigger nodes are the only parts of lolo-runtime that touch the network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response

log = logging.getLogger("lolo.server")


class Route(Protocol):
    """What a trigger registers for a path."""

    wants_compression: bool
    open_timeout: float

    async def on_request(
        self, conn: ServerConnection, request: Request, query: str
    ) -> Response | None: ...

    async def on_open(self, conn: ServerConnection) -> None: ...


class LoloConnection(ServerConnection):
    """A connection that says when its unsent bytes pass the transport's high-water mark.

    Triggers set that mark (``transport.set_write_buffer_limits``) to their cap on unsent
    bytes and ``on_buffer_full`` to what to do then. Every write counts: our frames, and
    the pongs and close frames the websockets library writes on its own.
    """

    on_buffer_full: Callable[[], None] | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.on_buffer_full is not None:
            self.on_buffer_full()


class ListenError(Exception):
    """The server could not listen (port in use, bad host...)."""


class HttpServer:
    """Routes WebSocket handshakes by path to triggers; several triggers share a port."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._routes: dict[str, Route] = {}
        self._server: Server | None = None

    def add_route(self, path: str, route: Route) -> None:
        if path in self._routes:
            raise ValueError(f"two triggers claim the path {path!r}")
        self._routes[path] = route

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from ``port`` when that was 0)."""
        if self._server is None:
            return self.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        # Compression is negotiated per connection; offer it only when some trigger wants
        # it, and each trigger withdraws the offer on its own connections otherwise.
        wants_compression = any(route.wants_compression for route in self._routes.values())
        extensions = [ServerPerMessageDeflateFactory()] if wants_compression else None
        # The handshake timeout starts before the path is known, so it cannot be chosen
        # per trigger: the most patient trigger sets it.
        open_timeout = max((route.open_timeout for route in self._routes.values()), default=10)
        try:
            self._server = await serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._process_request,
                compression=None,
                extensions=extensions,
                server_header="lolo-runtime",
                create_connection=LoloConnection,
                open_timeout=open_timeout,
                # Triggers set their own per-connection limits in on_request.
                max_size=None,
            )
        except OSError as exc:
            raise ListenError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc

    async def stop(self, timeout: float) -> None:
        """Refuse new handshakes, close open connections with 1001, wait for handlers."""
        server = self._server
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), timeout)
        except TimeoutError:
            log.warning("connections still open after %.1fs; aborting them", timeout)
            for conn in list(server.connections):
                conn.transport.abort()

    async def _process_request(
        self, conn: ServerConnection, request: Request
    ) -> Response | None:
        path, _, query = request.path.partition("?")
        route = self._routes.get(path)
        if route is None:
            return conn.respond(HTTPStatus.NOT_FOUND, "No WebSocket trigger at this path.\n")
        return await route.on_request(conn, request, query)

    async def _handle(self, conn: ServerConnection) -> None:
        assert conn.request is not None  # the handshake succeeded
        route = self._routes[conn.request.path.partition("?")[0]]
        await route.on_open(conn)
