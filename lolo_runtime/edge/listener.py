"""The one listening socket of an app: accepts TCP connections and serves them.

:class:`Edge` is what every connection of the listener shares (the routes, limits,
the write batcher, the set of live connections); :class:`Listener` owns the sockets
and the accept loop. Accepting by hand (rather than ``loop.create_server``) is what lets
a connection past the descriptor budget, or a lack of file descriptors, be answered with
503 as it is accepted, and logged once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from lolo_runtime.edge.batcher import WriteBatcher
from lolo_runtime.edge.fdlimit import SpareDescriptor, connection_budget
from lolo_runtime.edge.http1 import HttpConnection, HttpLimits
from lolo_runtime.edge.proxy import TrustedProxies, format_peer
from lolo_runtime.edge.responses import serialize, too_busy
from lolo_runtime.edge.routes import RouteTable
from lolo_runtime.edge.types import HttpResponse, HttpRoute, WebSocketRoute
from lolo_runtime.errors import LoloError

log = logging.getLogger("lolo.server")

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
WARN_INTERVAL = 10.0
TLS_SHUTDOWN_TIMEOUT = 2.0
MAX_LINGERING = 32
"""Refused sockets kept open at once until their client's request arrives."""
SPARELESS_PAUSE = 0.1
"""Seconds the listener stops accepting when out of descriptors and without its spare."""


class IntervalWarning:
    """A warning said at most once per ``WARN_INTERVAL``, with how many times it was due
    (``%(count)d`` in the message) since it was last said."""

    def __init__(self, message: str):
        self.message = message
        self._said_at: float | None = None
        self._count = 0

    def due(self, **values: object) -> None:
        self._count += 1
        now = time.monotonic()
        if self._said_at is None or now - self._said_at >= WARN_INTERVAL:
            log.warning(self.message, {**values, "count": self._count})
            self._said_at = now
            self._count = 0


class ListenError(LoloError):
    """The server could not listen (port in use, bad host...)."""


@dataclass(slots=True)
class RouteEntry:
    path: str
    http: HttpRoute | None = None
    websocket: WebSocketRoute | None = None


class Edge:
    """What the connections of one listener share."""

    def __init__(
        self,
        limits: HttpLimits | None = None,
        proxies: TrustedProxies | None = None,
        descriptor_limit: int | None = None,
    ):
        self.http_limits = limits or HttpLimits()
        self.proxies = proxies
        self.routes: RouteTable[RouteEntry] = RouteTable()
        self.batcher = WriteBatcher()
        self.connections: set[Any] = set()
        self.stopping = False
        self.connection_budget = connection_budget(descriptor_limit)
        self._budget_warning = IntervalWarning(
            "refusing connections with 503: %(in_use)d connections use the descriptors "
            "this process may open (%(count)d refused since the last warning); raise "
            "'ulimit -n' or lower max_connections"
        )
        self._all_closed: asyncio.Event | None = None
        self._closing: list[tuple[set[Any], asyncio.Event]] = []
        """Clients being closed by :meth:`close_clients_of`, and what it waits on."""

    def add_http(self, path: str, route: HttpRoute) -> None:
        self.routes.add(path, RouteEntry(path, http=route))

    def add_websocket(self, path: str, route: WebSocketRoute) -> None:
        self.routes.add(path, RouteEntry(path, websocket=route))

    def remove(self, path: str) -> RouteEntry | None:
        """Stop serving ``path`` (``--reload``): later requests for it get 404. Requests
        and clients it serves now are not touched (see :meth:`close_clients_of`)."""
        return self.routes.remove(path)

    def clients_of(self, route: object) -> list[Any]:
        """The WebSocket connections that ``route`` serves now (handshakes included)."""
        return [conn for conn in self.connections if getattr(conn, "route", None) is route]

    async def close_clients_of(self, route: object, code: int, reason: str, timeout: float) -> int:
        """Close the WebSocket clients of ``route`` with ``code`` and wait up to ``timeout``
        seconds until each has closed (its route told, through ``on_close``); return how
        many there were. A client still in its handshake is refused with 503."""
        clients = set(self.clients_of(route))
        count = len(clients)
        if not count:
            return 0
        waiting = (clients, asyncio.Event())
        self._closing.append(waiting)
        try:
            for conn in list(clients):
                conn.close(code, reason)
            if clients:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiting[1].wait(), timeout)
        finally:
            self._closing = [entry for entry in self._closing if entry is not waiting]
        return count

    def client_address(
        self, peer: tuple[str, int] | None, scheme: str, headers: list[tuple[str, str]]
    ) -> tuple[str | None, str]:
        if peer is None or self.proxies is None:
            return format_peer(peer), scheme
        return self.proxies.client(peer[0], peer[1], scheme, headers)

    def descriptor_refusal(self, accepting: int = 0) -> HttpResponse | None:
        """503 when one more connection would eat into the reserved descriptors (said in
        the log once per ``WARN_INTERVAL``, with how many were refused meanwhile).
        ``accepting``: connections accepted but not yet open (not in ``connections``)."""
        budget = self.connection_budget
        in_use = len(self.connections) + accepting
        if budget is None or in_use < budget:
            return None
        self._budget_warning.due(in_use=in_use)
        return too_busy()

    def connection_opened(self, conn: Any) -> None:
        self.connections.add(conn)

    def connection_closed(self, conn: Any) -> None:
        self.connections.discard(conn)
        for clients, gone in self._closing:
            clients.discard(conn)
            if not clients:
                gone.set()
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def close_all(self, timeout: float) -> bool:
        """Close every connection (WebSockets with 1001); wait up to ``timeout``."""
        self.stopping = True
        self._all_closed = asyncio.Event()
        for conn in list(self.connections):
            conn.shutdown()
        if not self.connections:
            return True
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
            return True
        except TimeoutError:
            return False


class Listener:
    """Binds ``host:port`` and feeds accepted sockets to :class:`HttpConnection`."""

    def __init__(
        self,
        edge: Edge,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        *,
        reuse_port: bool = False,
    ):
        self.edge = edge
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.reuse_port = reuse_port
        """SO_REUSEPORT: several worker processes bind the same port; the kernel spreads
        new connections across them."""
        self.sockets: list[socket.socket] = []
        self._spare = SpareDescriptor()
        self._starving_warning = IntervalWarning(
            f"out of file descriptors: refusing new connections with 503 (%(count)d refused in "
            f"the last {WARN_INTERVAL:g}s); raise 'ulimit -n' or lower max_connections"
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._accepting = 0  # sockets accepted whose connection object is not made yet
        self._lingering: dict[int, socket.socket] = {}  # refused, waiting to be closed

    @property
    def bound_port(self) -> int:
        return int(self.sockets[0].getsockname()[1]) if self.sockets else self.port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ListenError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        port = self.port
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], port, *address[2:]))
                sock.listen(2048)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                self._close_sockets()
                raise ListenError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
                ) from exc
            port = sock.getsockname()[1]  # port 0: every address gets the same one
            self.sockets.append(sock)
        for sock in self.sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(128):
            try:
                sock, _address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._refuse_without_descriptors(listening)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            if self.edge.descriptor_refusal(accepting=self._accepting) is not None:
                # Its descriptor would come out of the reserve: let it go at once.
                self._refuse(sock)
                continue
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._accepting += 1  # until its HttpConnection exists (and counts itself)
            task = loop.create_task(self._serve(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        counted = True

        def connection() -> HttpConnection:
            nonlocal counted
            self._accepting -= 1
            counted = False
            return HttpConnection(self.edge)

        try:
            await loop.connect_accepted_socket(
                connection,
                sock,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.edge.http_limits.head_timeout
                if self.ssl_context
                else None,
                # A client that never answers our TLS close_notify is let go after this.
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT if self.ssl_context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection dropped before it was served: %s", exc)
            sock.close()
        finally:
            if counted:
                self._accepting -= 1

    def _refuse_without_descriptors(self, listening: socket.socket) -> None:
        """Out of descriptors: free the spare, accept one client, tell it 503, close."""
        self._starving_warning.due()
        if not self._spare.release():
            # No spare to trade: stop polling a socket we cannot accept from for a moment,
            # rather than spin on it.
            self._pause_accepting(listening, SPARELESS_PAUSE)
            return
        try:
            sock, _ = listening.accept()
        except OSError:
            pass
        else:
            sock.setblocking(False)
            self._refuse(sock, linger=False)  # the spare must come back at once
        finally:
            self._spare.take()

    def _refuse(self, sock: socket.socket, linger: bool = True) -> None:
        """Tell a just-accepted client 503 (in plain HTTP; a TLS client is just closed).

        Closing a socket over bytes the client sends afterwards makes the kernel reset
        the connection, and a reset can overtake our 503. So the socket lingers (a few
        at a time, from the descriptor reserve) until the client's request arrives or a
        second passes, and its bytes are read before it is closed.
        """
        try:
            if self.ssl_context is None:
                sock.send(serialize(too_busy()))
                sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)
        except OSError:
            pass
        if not linger or self.ssl_context is not None or len(self._lingering) >= MAX_LINGERING:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        fd = sock.fileno()

        def done() -> None:
            if self._lingering.pop(fd, None) is not None:
                loop.remove_reader(fd)
                timer.cancel()
                with contextlib.suppress(OSError):
                    sock.recv(65536)
                sock.close()

        timer = loop.call_later(1.0, done)
        self._lingering[fd] = sock
        loop.add_reader(fd, done)

    def _pause_accepting(self, listening: socket.socket, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(listening.fileno())

        def resume() -> None:
            if listening in self.sockets:
                loop.add_reader(listening.fileno(), self._accept, listening)

        loop.call_later(seconds, resume)

    async def stop(self, timeout: float) -> None:
        """Stop accepting; close every connection; abort what is left after ``timeout``."""
        self._close_sockets()
        if not await self.edge.close_all(timeout):
            log.warning("connections still open after %.1fs; aborting them", timeout)
            for conn in list(self.edge.connections):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()
        self._spare.close()
        loop = asyncio.get_running_loop()
        for fd, sock in list(self._lingering.items()):
            loop.remove_reader(fd)
            sock.close()
        self._lingering.clear()

    def _close_sockets(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets = []
