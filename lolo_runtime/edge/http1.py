"""HTTP/1.1 on one TCP connection: httptools parses, this protocol does the I/O.

Requests are answered in the order they arrived (pipelining), one at a time; a client
that pipelines more than ``max_pipelined`` requests stops being read until answers go
out. Limits are answered before any route runs: request line 414, headers 431 (also
while a header line is still arriving: httptools buffers a header until its line ends),
body 413, a head not finished within ``head_timeout`` 408 (counted from when the
connection is idle: a head that arrives behind a slow answer gets its full time after
that answer), a body from which nothing arrives for ``head_timeout`` 408 (a slow upload
that keeps sending is fine), an unknown path 404, a wrong method 405 with ``Allow`` (on
a WebSocket path anything but GET). A client that half-closes gets its answers, then the
connection closes. A WebSocket upgrade, once its turn comes, is handed to
:func:`lolo_runtime.edge.upgrade.upgrade`, which takes the transport over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote_to_bytes

import httptools

from lolo_runtime.edge.admission import admit, has_body
from lolo_runtime.edge.responses import (
    CONTINUE,
    HeaderError,
    carries_body,
    check_headers,
    plain,
    response_head,
)
from lolo_runtime.edge.timer import LazyTimer
from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.edge.upgrade import upgrade

if TYPE_CHECKING:
    from lolo_runtime.edge.listener import Edge, RouteEntry

log = logging.getLogger("lolo.http")


_MAX_EARLY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_request_line: int = 8 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_pipelined: int = 16


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing: the answer is already chosen."""


class _Incoming:
    """The request being parsed."""

    __slots__ = (
        "body",
        "body_size",
        "entry",
        "fed",
        "header_bytes",
        "headers",
        "max_body",
        "raw_headers",
        "refusal",
        "request",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.max_body = 0
        self.entry: RouteEntry | None = None
        self.refusal: HttpResponse | None = None
        self.request: HttpRequest | None = None
        self.fed = 0
        """Bytes fed to the parser while this head was unfinished (whole reads only)."""


@dataclass(slots=True)
class _Item:
    """One request waiting for its turn to be answered."""

    request: HttpRequest
    entry: RouteEntry | None
    refusal: HttpResponse | None
    keep_alive: bool
    raw_head: bytes = b""


class HttpConnection(asyncio.Protocol):
    """Serves HTTP/1.1 on one connection until it closes or becomes a WebSocket."""

    def __init__(self, edge: Edge):
        self.edge = edge
        self.limits = edge.http_limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer: tuple[str, int] | None = None
        self.scheme = "http"
        self._incoming: _Incoming | None = None
        self._pending: deque[_Item] = deque()
        self._serving: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._timer = LazyTimer(self._loop)  # head, body or keep-alive timeout
        self._closed = False
        self._paused = False
        self._stop_parsing = False  # after an upgrade or a refusal that ends the connection
        self._upgrading = False
        self._trailing = bytearray()  # bytes after an upgrade request: the WebSocket's
        self._continue_wanted = False
        self._handed_over = False
        self._eof = False  # the client half-closed: answer what was asked, then close
        self._last_read = 0.0  # loop time of the last bytes received

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.edge.connection_opened(self)
        self._timer.arm(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._timer.close()
        if self._serving is None:
            self.edge.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._stop_parsing:
            if self._upgrading and len(self._trailing) < _MAX_EARLY_BYTES:
                self._trailing += data  # frames sent before our 101: the WebSocket's
            return
        unfinished = self._incoming
        self._last_read = self._loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._stop_parsing = True
            self._upgrading = True
            self._trailing += data[upgrade.args[0] :]
        except httptools.HttpParserCallbackError as error:
            if not isinstance(error.__context__, _Stop):
                raise
        except httptools.HttpParserError:
            self._refuse_and_close(plain(400, "Malformed HTTP request.\n"))
        else:
            if (
                unfinished is not None
                and unfinished is self._incoming
                and unfinished.request is None
            ):
                self._count_head_bytes(unfinished, len(data))
        self._run_next()

    def eof_received(self) -> bool | None:
        # A client may half-close after its last request and still read the answers.
        self._eof = True
        if not self._pending and self._serving is None:
            return None  # close now
        return True

    # parser callbacks

    def on_message_begin(self) -> None:
        self._incoming = _Incoming()
        if self._timer.armed and not self._pending and self._serving is None:
            self._timer.arm(self.limits.head_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        incoming = self._expect()
        incoming.url += url
        if len(incoming.url) > self.limits.max_request_line:
            self._refuse_now(incoming, plain(414, "Request line too long.\n"))

    def on_header(self, name: bytes, value: bytes) -> None:
        incoming = self._expect()
        incoming.header_bytes += len(name) + len(value) + 4
        incoming.raw_headers.append((name, value))
        if (
            incoming.header_bytes > self.limits.max_header_bytes
            or len(incoming.raw_headers) > self.limits.max_headers
        ):
            self._refuse_now(incoming, plain(431, "Request headers too large.\n"))
        incoming.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        incoming = self._expect()
        if self._timer.armed and self._incoming is not None:
            self._timer.disarm()
        method = self.parser.get_method().decode("ascii", "replace")
        try:
            url = httptools.parse_url(incoming.url)
        except httptools.HttpParserInvalidURLError:
            self._refuse_now(incoming, plain(400, "Malformed request target.\n"))
            return
        path = unquote_to_bytes(url.path or b"/").decode("utf-8", "replace")
        query = (url.query or b"").decode("latin-1")
        peer, scheme = self.edge.client_address(self.peer, self.scheme, incoming.headers)
        request = HttpRequest(
            method, path, query, incoming.headers, b"", peer, scheme, self.parser.get_http_version()
        )
        incoming.request = request
        body = has_body(request)
        admission = admit(self.edge.routes, (url.path or b"/").decode("latin-1"), request, body)
        incoming.entry, incoming.refusal = admission.entry, admission.refusal
        incoming.max_body = admission.max_body
        if incoming.refusal is not None and body:
            self._refuse_now(incoming, incoming.refusal)
        else:
            if (
                incoming.refusal is None
                and body
                and (request.header("expect") or "").lower() == "100-continue"
            ):
                self._continue_wanted = True
                self._maybe_continue()
            if body and not self._pending and self._serving is None:
                self._timer.arm(self.limits.head_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        incoming = self._expect()
        incoming.body_size += len(body)
        if incoming.body_size > incoming.max_body:
            self._refuse_now(incoming, plain(413, "Request body too large.\n"))
        incoming.body.append(body)

    def on_message_complete(self) -> None:
        incoming = self._expect()
        if incoming.request is not None and self._timer.armed:
            self._timer.disarm()  # the body timer
        self._incoming = None
        self._continue_wanted = False
        request = incoming.request
        assert request is not None
        request.body = b"".join(incoming.body)
        keep_alive = self.parser.should_keep_alive()
        raw_head = b""
        if incoming.entry is not None and incoming.entry.websocket is not None:
            raw_head = self._head_bytes(incoming)
        self._pending.append(_Item(request, incoming.entry, incoming.refusal, keep_alive, raw_head))
        if len(self._pending) >= self.limits.max_pipelined and not self._paused:
            self._paused = True
            self._transport().pause_reading()

    # serving, in order

    def _run_next(self) -> None:
        while self._serving is None and self._pending and not self._closed:
            item = self._pending.popleft()
            if item.refusal is not None or item.entry is None:
                self._write(item.request, item.refusal or plain(404), item.keep_alive)
                continue
            if item.entry.websocket is not None:
                self._hand_over(item)
                return
            self._serving = self._loop.create_task(self._serve(item))
        if self._paused and len(self._pending) < self.limits.max_pipelined and not self._closed:
            self._paused = False
            self._transport().resume_reading()
        self._maybe_continue()
        if self._serving is None and not self._pending and not self._closed:
            self._idle()

    def _idle(self) -> None:
        """Everything asked is answered: close, or wait for the next head."""
        incoming = self._incoming
        if incoming is None:
            if (self._stop_parsing and not self._handed_over) or self.edge.stopping or self._eof:
                self._close()
            elif not self._timer.armed:
                self._timer.arm(self.limits.keep_alive_timeout, self._close)
        elif not self._timer.armed:
            # A head or body that began while an answer was on its way: its time starts now.
            if incoming.request is None:
                self._timer.arm(self.limits.head_timeout, self._head_timed_out)
            else:
                self._timer.arm(self.limits.head_timeout, self._body_timed_out)

    async def _serve(self, item: _Item) -> None:
        assert item.entry is not None and item.entry.http is not None
        try:
            response = await item.entry.http.serve_http(item.request)
            check_headers(response.headers)
        except HeaderError as error:
            log.error(
                "%s %s: cannot send the response: %s", item.request.method, item.request.path, error
            )
            response = plain(500)
        except Exception:
            log.exception("%s %s: the route failed", item.request.method, item.request.path)
            response = plain(500)
        if response.status < 200:
            log.error(
                "%s %s: cannot send the response: status %d is informational, not an answer",
                item.request.method,
                item.request.path,
                response.status,
            )
            response = plain(500)
        self._serving = None
        if self._closed:
            self.edge.connection_closed(self)
        else:
            self._write(item.request, response, item.keep_alive)
            self._run_next()

    def _write(self, request: HttpRequest, response: HttpResponse, keep_alive: bool) -> None:
        keep_alive = (
            keep_alive and not self.edge.stopping and not (self._stop_parsing and not self._pending)
        )
        body = (
            b"" if request.method == "HEAD" or not carries_body(response.status) else response.body
        )
        # An HTTP/1.0 client closes unless told the connection stays open.
        head = response_head(
            response,
            len(response.body),
            keep_alive,
            announce_keep_alive=request.http_version == "1.0",
        )
        transport = self._transport()
        transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            transport.write(body)
        if not keep_alive:
            self._close()

    def _hand_over(self, item: _Item) -> None:
        assert item.entry is not None and item.entry.websocket is not None
        self._handed_over = True
        self._timer.close()
        trailing = bytes(self._trailing)
        self._trailing = bytearray()
        self.edge.connection_closed(self)
        upgrade(
            self.edge,
            self._transport(),
            item.entry.websocket,
            item.request,
            item.raw_head,
            trailing,
        )

    # helpers

    def _head_bytes(self, incoming: _Incoming) -> bytes:
        """The request head again, for the websockets library's handshake checks."""
        version = self.parser.get_http_version()
        lines = [self.parser.get_method() + b" " + incoming.url + f" HTTP/{version}\r\n".encode()]
        lines.extend(name + b": " + value + b"\r\n" for name, value in incoming.raw_headers)
        lines.append(b"\r\n")
        return b"".join(lines)

    def _count_head_bytes(self, incoming: _Incoming, size: int) -> None:
        """httptools buffers a header line until it ends: bound what it may hold."""
        incoming.fed += size
        if incoming.fed > self.limits.max_request_line + self.limits.max_header_bytes + 1024:
            self._refuse_and_close(plain(431, "Request headers too large.\n"))

    def _maybe_continue(self) -> None:
        if self._continue_wanted and self._serving is None and not self._pending:
            self._continue_wanted = False
            self._transport().write(CONTINUE)

    def _refuse_now(self, incoming: _Incoming, response: HttpResponse) -> None:
        """Answer (in turn) and close: the rest of this request will not be read."""
        request = incoming.request or HttpRequest("GET", "/", "", incoming.headers)
        self._incoming = None
        self._stop_parsing = True
        self._pending.append(_Item(request, None, response, False))
        raise _Stop

    def _refuse_and_close(self, response: HttpResponse) -> None:
        self._incoming = None
        self._stop_parsing = True
        self._pending.append(_Item(HttpRequest("GET", "/", "", []), None, response, False))

    def _head_timed_out(self) -> None:
        if self._incoming is not None or self._pending or self._serving is not None:
            if self._incoming is not None and self._serving is None and not self._pending:
                self._refuse_and_close(plain(408, "Request head not received in time.\n"))
                self._run_next()
            return
        self._close()

    def _body_timed_out(self) -> None:
        incoming = self._incoming
        if incoming is None or self._pending or self._serving is not None:
            return  # done, or not its turn yet: _idle arms the timer again
        quiet = self._loop.time() - self._last_read
        if quiet < self.limits.head_timeout:  # it is still sending
            self._timer.arm(self.limits.head_timeout - quiet, self._body_timed_out)
            return
        self._refuse_and_close(plain(408, "Request body not received in time.\n"))
        self._run_next()

    def _expect(self) -> _Incoming:
        if self._incoming is None:
            self._incoming = _Incoming()
        return self._incoming

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None
        return self.transport

    def _close(self) -> None:
        self._timer.disarm()
        if not self._closed:
            self._closed = True
            self._transport().close()

    def shutdown(self) -> None:
        """The server is stopping: close when idle, else after the answer in progress."""
        if self._serving is None and not self._pending:
            if self.scheme == "https" and self.transport is not None:
                # A TLS close waits for the client's close_notify, which an idle
                # keep-alive client never sends: with nothing owed, just drop it.
                self._timer.disarm()
                self._closed = True
                self.transport.abort()
            else:
                self._close()
