"""The edge's contract: what a request looks like, and what a route must offer.

The listener (``listener.py``), the HTTP/1.1 protocol (``http1.py``) and the WebSocket
protocol (``websocket.py``) call routes only through the protocols below, and trigger
nodes implement them. This module imports no implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lolo_runtime.edge.websocket import WebSocketConnection


@dataclass(slots=True)
class HttpRequest:
    """One parsed HTTP/1.1 request (its body complete)."""

    method: str
    path: str
    """The URL path, percent-decoded."""
    query_string: str
    """Everything after ``?``, still encoded."""
    headers: list[tuple[str, str]]
    """In arrival order; names lower-cased, values decoded as latin-1."""
    body: bytes = b""
    peer: str | None = None
    """``host:port`` of the client (of the proxy's client with trusted proxy headers)."""
    scheme: str = "http"
    http_version: str = "1.1"
    params: dict[str, str] = field(default_factory=dict)
    """Route parameters (``/users/:id`` gives ``{"id": ...}``), set by the route table."""

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower-case); repeated headers joined with ``, ``."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None


@dataclass(slots=True)
class HttpResponse:
    """What a route answers. ``Content-Length`` and ``Date`` are added by the edge."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """Per-route WebSocket limits the edge enforces."""

    max_message_bytes: int = 1024 * 1024
    origins: tuple[str, ...] | None = None
    compression: bool = False
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 2.0
    open_timeout: float = 10.0
    max_send_buffer_bytes: int = 1024 * 1024
    send_stall_timeout: float = 5.0


class HttpRoute(Protocol):
    """A path served with plain HTTP (the HTTP trigger, static files)."""

    @property
    def methods(self) -> frozenset[str] | None:
        """Methods served (upper-case); ``None``: all. Others get 405 with ``Allow``."""

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted; larger gets 413 before the route runs."""

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        """Answer one request. Raising is answered with 500 and logged by the edge."""


class WebSocketRoute(Protocol):
    """A path served with WebSocket (the WebSocket trigger).

    The edge calls, for one client: ``admit`` (limits; no app code), then, if the
    handshake is valid, ``on_handshake`` (the app decides), then ``on_open`` once the
    101 is sent, ``on_message`` one message at a time, and ``on_close`` exactly once
    after ``on_handshake`` has returned and the last ``on_message`` has finished,
    however the connection ended.
    """

    @property
    def ws_settings(self) -> WebSocketSettings: ...

    def admit(self, request: HttpRequest) -> HttpResponse | None:
        """A refusal (503...) before any app code runs, or None to go on."""

    async def on_handshake(
        self, conn: WebSocketConnection, request: HttpRequest
    ) -> HttpResponse | None:
        """Run the app's ``req`` chain; return a refusal, or None to accept."""

    def on_open(self, conn: WebSocketConnection) -> None:
        """The 101 is sent; frames may be sent now."""

    async def on_message(self, conn: WebSocketConnection, message: str | bytes) -> None:
        """One message from the client; the next is not delivered before this returns."""

    def on_close(self, conn: WebSocketConnection, code: int, reason: str) -> None:
        """The connection is over (or never opened: code 1006)."""
