"""``lolo/websocket-trigger``: WebSocket clients start chains on ``req``, ``message``, ``close``.

The edge has checked the handshake (method, key, version, Origin, limits) before the
``req`` chain runs; the trigger then holds the handshake until that chain has finished,
and accepts it, or refuses it if a handler raised (:class:`~lolo_runtime.errors.Reject`
gives its own HTTP status, anything else 500) or answered with ``{"status": 4xx}``.
Responses emitted while the handshake is held are sent, in order, once the socket is
open. Every client whose ``req`` chain ran gets exactly one ``close`` event.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from enum import Enum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.channels.hub import Outgoing
from lolo_runtime.edge.responses import plain
from lolo_runtime.edge.types import HttpRequest, HttpResponse, WebSocketSettings
from lolo_runtime.edge.websocket import WebSocketConnection
from lolo_runtime.errors import Reject
from lolo_runtime.node import NodeConfig, Trigger, TriggerHost
from lolo_runtime.nodes.wsframes import OP_TEXT, FrameCache, payload_of
from lolo_runtime.types import Event

if TYPE_CHECKING:
    from lolo_runtime.engine import Engine

log = logging.getLogger("lolo.websocket")


class WebSocketParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        pattern=r"^/[^?#\s]*$",
        description="URL path clients connect to "
        "(':name' segments are route params, a final '*' matches the rest).",
    )
    max_message_bytes: int = Field(
        1024 * 1024, ge=1, description="Largest message accepted; bigger closes with 1009."
    )
    compression: bool = Field(
        False, description="Offer permessage-deflate. Off: it costs CPU and invites CRIME."
    )
    origins: list[str] | None = Field(
        None, description="Allowed Origin headers; others get HTTP 403. Unset: any origin."
    )
    max_connections: int = Field(
        10_000, ge=1, description="Open connections allowed; more are refused with HTTP 503."
    )
    max_messages_per_second: float | None = Field(
        20,
        gt=0,
        description="Per connection, averaged over a burst; more closes with 1008. null: no limit.",
    )
    burst: int = Field(
        40, ge=1, description="Messages a connection may send at once above the rate."
    )
    max_send_buffer_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Unsent bytes a client may leave unread before it must show progress: "
        "past it, a client that reads nothing for send_stall_timeout is closed with 1013.",
    )
    send_stall_timeout: float = Field(
        5,
        gt=0,
        description="Seconds a client over max_send_buffer_bytes may go without "
        "reading anything before it is closed with 1013.",
    )
    ping_interval: float | None = Field(
        20, gt=0, description="Seconds between keepalive pings. null: no pings."
    )
    ping_timeout: float | None = Field(
        20, gt=0, description="Seconds to wait for a pong before closing with 1011."
    )
    close_timeout: float = Field(
        2,
        gt=0,
        description="Seconds a client has to answer our close frame before the "
        "connection is dropped and its close chain runs (a frozen peer waits this long).",
    )
    open_timeout: float = Field(
        10,
        gt=0,
        description="Seconds the req chain has to accept or refuse a client; "
        "past it the client gets HTTP 503 (the chain still gets its close event).",
    )


class _Phase(Enum):
    HANDSHAKE = 1
    OPEN = 2
    CLOSED = 3


CLOSE_TOO_FAST = 1008


class WebSocketSession:
    """One client connection: the invocation behind every event it causes."""

    __slots__ = (
        "allowance",
        "base",
        "conn",
        "early",
        "last",
        "pending",
        "phase",
        "refusal",
        "session_id",
        "stall_mark",
        "trigger",
    )

    def __init__(
        self, trigger: WebSocketTrigger, conn: WebSocketConnection, session_id: str, base: Event
    ):
        self.trigger = trigger
        self.conn = conn
        self.session_id = session_id
        self.base = base
        self.phase = _Phase.HANDSHAKE
        self.pending: list[dict[str, Any]] = []  # the req chain's responses, sent at open
        self.early: list[Outgoing] = []
        """Channel messages that came during the handshake: sent after ``pending``, so a
        client gets what its req chain sends (greeting, history) before live messages."""
        self.refusal: tuple[int, str] | None = None
        self.allowance = float(trigger.params.burst)
        self.last = time.monotonic()
        watchdog = trigger.engine.watchdog
        self.stall_mark = watchdog.stalled_by(self.last) if watchdog is not None else 0.0

    def emit(self, name: str, payload: Any = None) -> None:
        if name != "response":
            log.debug("session %s: ignoring emitted event %r", self.session_id, name)
            return
        if not isinstance(payload, dict):
            raise TypeError(
                "emit('response', ...) takes a dict such as {'body': ...} or {'end': True}, "
                f"not {type(payload).__name__}"
            )
        if self.phase is _Phase.OPEN:
            self.trigger.respond(self, payload)
        elif self.phase is _Phase.HANDSHAKE:
            status = payload.get("status")
            if isinstance(status, int) and status >= 300 and self.refusal is None:
                self.refusal = (status, _text(payload.get("body")))
            else:
                self.pending.append(payload)
        # A closed session drops what is emitted to it: its client is gone.

    def deliver(self, message: Outgoing) -> None:
        """A channel message (ctx.publish, ctx.send, lolo/broadcast) for this client."""
        if self.phase is _Phase.OPEN:
            conn = self.conn
            if not conn.is_open:
                return
            if conn.compressed:
                conn.send_message(message.payload, text=message.opcode == OP_TEXT)
            else:
                conn.send_frame(message.frame)
        elif self.phase is _Phase.HANDSHAKE:
            self.early.append(message)

    def fail(self, node_id: str, error: BaseException) -> None:
        if self.phase is _Phase.HANDSHAKE and self.refusal is None:
            if isinstance(error, Reject):
                self.refusal = (error.status, error.reason)
            else:
                self.refusal = (HTTPStatus.INTERNAL_SERVER_ERROR, "")


def _text(body: Any) -> str:
    if body is None:
        return ""
    return body if isinstance(body, str) else json.dumps(body)


def request_fields(request: HttpRequest) -> Event:
    """The fields every event of a request (or connection) shares, as Lolo names them."""
    headers: dict[str, str] = {}
    for key, value in request.headers:
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    parsed = parse_qs(request.query_string, keep_blank_values=True) if request.query_string else {}
    return {
        "sessionId": None,
        "path": request.path,
        "method": request.method,
        "headers": headers,
        "query": {k: v[0] if len(v) == 1 else v for k, v in parsed.items()},
        "params": dict(request.params),
        "peer": request.peer,
        "scheme": request.scheme,
    }


class WebSocketTrigger(Trigger):
    """Accepts WebSocket clients at ``params.path`` on the app's port."""

    Params = WebSocketParams
    outputs: ClassVar[tuple[str, ...]] = ("req", "message", "close")

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: WebSocketParams = config.params  # type: ignore[assignment]
        p = self.params
        self.ws_settings = WebSocketSettings(
            max_message_bytes=p.max_message_bytes,
            origins=tuple(p.origins) if p.origins is not None else None,
            compression=p.compression,
            ping_interval=p.ping_interval,
            ping_timeout=p.ping_timeout,
            close_timeout=p.close_timeout,
            open_timeout=p.open_timeout,
            max_send_buffer_bytes=p.max_send_buffer_bytes,
            send_stall_timeout=p.send_stall_timeout,
        )
        self._engine: Engine | None = None
        self._open_count = 0
        self._handshaking = 0  # req chains running: each may become a connection
        self._frames = FrameCache()

    @property
    def http_path(self) -> str | None:
        return self.params.path

    @property
    def open_sessions(self) -> int:
        """Clients connected now (accepted, not yet closed): the inspector shows it."""
        return self._open_count

    async def start(self, host: TriggerHost) -> None:
        self._engine = host.engine
        host.add_websocket_route(self.params.path, self)

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "trigger used before start()"
        return self._engine

    # the edge's WebSocketRoute protocol

    def admit(self, request: HttpRequest) -> HttpResponse | None:
        if self._open_count + self._handshaking >= self.params.max_connections:
            log.warning(
                "%s: refusing a client: %d connections already open",
                self.id,
                self.params.max_connections,
            )
            return plain(503, "Too many connections.\n")
        return None

    async def on_handshake(
        self, conn: WebSocketConnection, request: HttpRequest
    ) -> HttpResponse | None:
        session_id = str(uuid.uuid4())
        base = request_fields(request)
        base["sessionId"] = session_id
        session = WebSocketSession(self, conn, session_id, base)
        conn.session = session
        conn.log_name = f"session {session_id}"
        self.engine.channels.register(session)
        self._handshaking += 1
        try:
            await self.engine.fire(self, "req", dict(base), session)
        finally:
            self._handshaking -= 1
        if session.refusal is not None:
            status, reason = session.refusal
            return plain(status, reason or None)
        self._open_count += 1  # counted now: on_open follows at once, or on_close
        return None

    def on_open(self, conn: WebSocketConnection) -> None:
        session: WebSocketSession = conn.session
        session.phase = _Phase.OPEN
        for payload in session.pending:
            self.respond(session, payload)
        for message in session.early:
            session.deliver(message)
        session.pending.clear()
        session.early.clear()

    async def on_message(self, conn: WebSocketConnection, message: str | bytes) -> None:
        session: WebSocketSession = conn.session
        rate = self.params.max_messages_per_second
        if rate is not None:
            # Token bucket: ``burst`` messages at once, ``rate`` a second after that. Time
            # the server itself was stalled (a blocking handler) is not the client's: what
            # it sent meanwhile arrives as one burst, so the bucket may hold that much more.
            now = time.monotonic()
            cap = float(self.params.burst)
            watchdog = self.engine.watchdog
            stalled = watchdog.stalled_by(now) if watchdog is not None else 0.0
            if stalled > session.stall_mark:
                cap += (stalled - session.stall_mark) * rate
                session.stall_mark = stalled
            refill = session.allowance + (now - session.last) * rate
            session.allowance = refill if refill <= cap else max(cap, session.allowance)
            session.last = now
            if session.allowance < 1:
                log.warning("session %s: over %g messages/s; closing", session.session_id, rate)
                conn.close(CLOSE_TOO_FAST, "too many messages")
                return
            session.allowance -= 1
        ev = session.base.copy()
        ev["message"] = message
        await self.engine.fire(self, "message", ev, session)

    def on_close(self, conn: WebSocketConnection, code: int, reason: str) -> None:
        session: WebSocketSession | None = conn.session
        if session is None:
            return
        was_counted = session.refusal is None
        session.phase = _Phase.CLOSED
        self.engine.channels.unregister(session.session_id)
        if was_counted:
            self._open_count -= 1
        ev = session.base.copy()
        ev["code"] = code
        ev["reason"] = reason
        self.engine.spawn(self.engine.fire(self, "close", ev, session))

    def respond(self, session: WebSocketSession, payload: dict[str, Any]) -> None:
        """Act on one ``response`` event: send its ``body``, close on ``end``."""
        conn = session.conn
        body = payload.get("body")
        if body is not None and conn.is_open:
            if conn.compressed:
                # A negotiated extension makes frames differ per connection.
                opcode, data = payload_of(body)
                conn.send_message(data, text=opcode == OP_TEXT)
            else:
                conn.send_frame(self._frames.frame(body))
        if payload.get("end"):
            code, reason = payload.get("code", 1000), payload.get("reason", "")
            if (
                isinstance(code, bool)
                or not isinstance(code, int)
                or not (code == 1000 or 3000 <= code <= 4999)
                or not isinstance(reason, str)
            ):
                log.error(
                    "session %s: emit('response', {'end': True, 'code': %r}): a close "
                    "code is 1000 or 3000-4999, a reason a str; closing with 1000",
                    session.session_id,
                    code,
                )
                code, reason = 1000, ""
            # A close reason is at most 123 bytes of UTF-8.
            conn.close(code, reason.encode()[:120].decode(errors="ignore"))
