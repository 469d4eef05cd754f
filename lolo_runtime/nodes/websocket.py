"""``lolo/websocket-trigger``: WebSocket clients start chains on ``req``, ``message``, ``close``.

The ``req`` chain runs *during* the opening handshake: the trigger holds the handshake
until that chain has finished, then accepts it, or refuses it if a handler raised
(:class:`~lolo_runtime.errors.Reject` gives its own HTTP status, anything else 500) or
answered with ``{"status": 4xx}``. Responses emitted while the handshake is held are
sent, in order, as soon as the socket is open.
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
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Origin

from lolo_runtime.errors import Reject
from lolo_runtime.node import NodeConfig, Trigger
from lolo_runtime.nodes.wsoutbox import Outbox
from lolo_runtime.server import LoloConnection
from lolo_runtime.types import Event

if TYPE_CHECKING:
    from lolo_runtime.engine import Engine
    from lolo_runtime.runtime import Runtime

log = logging.getLogger("lolo.websocket")


class WebSocketParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(pattern=r"^/[^?#\s]*$", description="URL path clients connect to.")
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
        20, gt=0, description="Per connection, averaged over a burst; more closes with 1008. "
        "null: no limit.",
    )
    burst: int = Field(
        40, ge=1, description="Messages a connection may send at once above the rate."
    )
    max_send_buffer_bytes: int = Field(
        1024 * 1024, ge=1024,
        description="Unsent bytes allowed to pile up for a client that does not read; "
        "past it the client is closed with 1013.",
    )
    ping_interval: float | None = Field(
        20, gt=0, description="Seconds between keepalive pings. null: no pings."
    )
    ping_timeout: float | None = Field(
        20, gt=0, description="Seconds to wait for a pong before closing with 1011."
    )
    close_timeout: float = Field(
        2, gt=0, description="Seconds a client has to answer our close frame before the "
        "connection is dropped and its close chain runs (a frozen peer waits this long).",
    )
    open_timeout: float = Field(
        10, gt=0, description="Seconds a client has to finish the handshake (the req chain "
        "included). The port is shared, so the largest value among triggers applies.",
    )


class _Phase(Enum):
    HANDSHAKE = 1
    OPEN = 2
    CLOSED = 3


CLOSE_TOO_FAST = 1008
CLOSE_SLOW_READER = 1013


class WebSocketSession:
    """One client connection: the invocation behind every event it causes."""

    __slots__ = (
        "base", "close_code", "closing", "conn", "outgoing", "pending", "phase", "refusal",
        "session_id", "trigger",
    )

    def __init__(self, trigger: WebSocketTrigger, conn: ServerConnection, session_id: str,
                 base: Event):
        self.trigger = trigger
        self.conn = conn
        self.session_id = session_id
        self.base = base
        self.phase = _Phase.HANDSHAKE
        self.pending: list[dict[str, Any]] = []
        self.refusal: tuple[int, str] | None = None
        self.closing = False
        self.close_code: int | None = None  # set when we cut the connection ourselves
        self.outgoing: list[bytes] | None = None

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

    def fail(self, node_id: str, error: BaseException) -> None:
        if self.phase is _Phase.HANDSHAKE and self.refusal is None:
            if isinstance(error, Reject):
                self.refusal = (error.status, error.reason)
            else:
                self.refusal = (HTTPStatus.INTERNAL_SERVER_ERROR, "")


def _close_code(conn: ServerConnection) -> int | None:
    """The code the connection closed with; when the library failed it (1009, 1007, 1011
    for a keepalive timeout...) and the client never answered, the code it sent."""
    code = conn.close_code
    sent = conn.protocol.close_sent
    if code == CloseCode.ABNORMAL_CLOSURE and sent is not None:
        return int(sent.code)
    return code


def _text(body: Any) -> str:
    if body is None:
        return ""
    return body if isinstance(body, str) else json.dumps(body)


class WebSocketTrigger(Trigger):
    """Accepts WebSocket clients at ``params.path`` on the app's port."""

    Params = WebSocketParams
    outputs: ClassVar[tuple[str, ...]] = ("req", "message", "close")

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: WebSocketParams = config.params  # type: ignore[assignment]
        self.wants_compression = self.params.compression
        self.open_timeout = self.params.open_timeout
        self._engine: Engine | None = None
        self._opening: dict[ServerConnection, WebSocketSession] = {}
        self._open_count = 0
        self._handshaking = 0  # req chains running: each may become a connection
        self._outbox = Outbox()

    @property
    def http_path(self) -> str | None:
        return self.params.path

    async def start(self, runtime: Runtime) -> None:
        self._engine = runtime.engine
        runtime.http.add_route(self.params.path, self)

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "trigger used before start()"
        return self._engine

    async def on_request(
        self, conn: ServerConnection, request: Request, query: str
    ) -> Response | None:
        params = self.params
        if self._open_count + len(self._opening) + self._handshaking >= params.max_connections:
            log.warning("%s: refusing a client: %d connections already open",
                        self.id, params.max_connections)
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections.\n")
        protocol = conn.protocol
        protocol.max_message_size = params.max_message_bytes
        if params.origins is not None:
            protocol.origins = [Origin(origin) for origin in params.origins]
        if not params.compression:
            protocol.available_extensions = None
        conn.ping_interval = params.ping_interval
        conn.ping_timeout = params.ping_timeout
        conn.close_timeout = params.close_timeout
        conn.transport.set_write_buffer_limits(high=params.max_send_buffer_bytes)
        session_id = str(uuid.uuid4())
        base = self._base_event(conn, request, query)
        base["sessionId"] = session_id
        session = WebSocketSession(self, conn, session_id, base)
        if isinstance(conn, LoloConnection):
            conn.on_buffer_full = lambda: self._close_slow_reader(session)
        self._handshaking += 1
        try:
            await self.engine.fire(self, "req", dict(session.base), session)
        finally:
            self._handshaking -= 1
        if session.refusal is not None:
            status, reason = session.refusal
            return conn.respond(status, reason or f"{HTTPStatus(status).phrase}\n")
        self._opening[conn] = session
        # The websockets library skips the handler if the client vanished mid-handshake;
        # the chain that saw ``req`` must still see ``close``.
        conn.connection_lost_waiter.add_done_callback(
            lambda _: self._lost_before_open(conn)
        )
        return None

    def _base_event(self, conn: ServerConnection, request: Request, query: str) -> Event:
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed = parse_qs(query, keep_blank_values=True)
        address = conn.remote_address
        return {
            "sessionId": None,
            "path": self.params.path,
            "method": "GET",
            "headers": headers,
            "query": {k: v[0] if len(v) == 1 else v for k, v in parsed.items()},
            "params": {},
            "peer": f"{address[0]}:{address[1]}" if address else None,
        }

    def _lost_before_open(self, conn: ServerConnection) -> None:
        session = self._opening.pop(conn, None)
        if session is not None:
            session.phase = _Phase.CLOSED
            self.engine.spawn(self._fire_close(session))

    async def on_open(self, conn: ServerConnection) -> None:
        session = self._opening.pop(conn, None)
        if session is None:
            return  # the client vanished between the handshake and now; close has fired
        session.phase = _Phase.OPEN
        self._open_count += 1
        for payload in session.pending:
            self.respond(session, payload)
        session.pending.clear()
        engine, base = self.engine, session.base
        rate, burst = self.params.max_messages_per_second, self.params.burst
        allowance, last = float(burst), time.monotonic()
        try:
            async for message in conn:
                if rate is not None:
                    # Token bucket: ``burst`` messages at once, ``rate`` a second after that.
                    now = time.monotonic()
                    allowance = min(burst, allowance + (now - last) * rate)
                    last = now
                    if allowance < 1:
                        if not session.closing:
                            session.closing = True
                            log.warning("session %s: over %g messages/s; closing",
                                        session.session_id, rate)
                            engine.spawn(conn.close(CLOSE_TOO_FAST, "too many messages"))
                        # Keep reading (and dropping): the client's answer to the close
                        # frame is queued behind its flood.
                        continue
                    allowance -= 1
                ev = base.copy()
                ev["message"] = message
                await engine.fire(self, "message", ev, session)
        except ConnectionClosed:
            pass
        finally:
            session.phase = _Phase.CLOSED
            self._open_count -= 1
            await self._fire_close(session)

    async def _fire_close(self, session: WebSocketSession) -> None:
        ev = session.base.copy()
        ev["code"] = session.close_code or _close_code(session.conn)
        ev["reason"] = session.conn.close_reason
        await self.engine.fire(self, "close", ev, session)

    def respond(self, session: WebSocketSession, payload: dict[str, Any]) -> None:
        """Act on one ``response`` event: send its ``body``, close on ``end``."""
        body = payload.get("body")
        if body is not None:
            self._outbox.send(session, body)
        if payload.get("end"):
            self.engine.spawn(session.conn.close())

    def _close_slow_reader(self, session: WebSocketSession) -> None:
        conn = session.conn
        if session.closing or conn.protocol.state is not State.OPEN:
            return
        session.closing = True
        session.close_code = CLOSE_SLOW_READER
        log.warning("session %s: client is not reading; closing", session.session_id)
        # The close frame waits behind everything unread, so a client that never reads
        # never answers it: give it close_timeout to, then drop the TCP connection.
        conn.protocol.fail(CLOSE_SLOW_READER, "not reading fast enough")
        conn.send_data()
        timeout = self.params.close_timeout
        conn.loop.call_later(timeout, conn.transport.abort)
