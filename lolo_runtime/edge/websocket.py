"""WebSocket on one TCP connection: the websockets library's Sans-I/O ``ServerProtocol``
does the protocol, this asyncio protocol does the I/O.

What this layer owns:

* **The held handshake.** The handshake is valid (checked by ``upgrade.py``) before this
  object exists; the route's ``on_handshake`` (the app's ``req`` chain) then decides,
  within ``open_timeout``, whether the 101 goes out.
* **One message at a time.** Messages are queued and handed to ``on_message`` in order,
  the next only after the previous returned. Past a few messages' worth of queued bytes
  the socket stops being read, so TCP pushes back on a fast sender.
* **Writes.** Frames a route queues with :meth:`send_frame` during one loop turn are
  written with one ``transport.write`` when the loop turns (``batcher.py``).
* **Backpressure judged by progress.** Past ``max_send_buffer_bytes`` unread, a client
  must take some of what waits for it in every ``send_stall_timeout`` window; one that
  takes nothing in a whole window, or falls four caps behind the largest frame it was
  sent, is closed with 1013 (``sendwatch.py``). A client that reads gets frames of any
  size. While over the cap, the client's own data is not read (so pings
  cannot pile up pongs).
* **Exactly one** ``on_close`` per ``on_handshake``, after the last ``on_message``; but
  when the client has left and the message chain in flight is still running
  ``close_timeout`` seconds later (a stuck handler), ``on_close`` runs anyway, so the
  client's close chain and slot do not wait on it. Messages still queued are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any

from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from lolo_runtime.edge.messages import MessageAssembler, MessageError
from lolo_runtime.edge.responses import plain, serialize
from lolo_runtime.edge.sendwatch import SendWatch
from lolo_runtime.edge.types import HttpRequest, HttpResponse, WebSocketRoute

if TYPE_CHECKING:
    from lolo_runtime.edge.listener import Edge

log = logging.getLogger("lolo.websocket")

CLOSE_GOING_AWAY = 1001
CLOSE_ABNORMAL = 1006
CLOSE_TRY_AGAIN_LATER = 1013
_SEND_EOF = b""
_MAX_EARLY_BYTES = 1024 * 1024


class Phase(Enum):
    HANDSHAKE = 1
    OPEN = 2
    ENDED = 3


class WebSocketConnection(asyncio.Protocol):
    """One client, from its valid handshake request to its close."""

    def __init__(
        self,
        edge: Edge,
        route: WebSocketRoute,
        protocol: ServerProtocol,
        response: Response,
        request: HttpRequest,
    ):
        self.edge = edge
        self.route = route
        self.settings = route.ws_settings
        self.protocol = protocol
        self.request = request
        self.session: Any = None
        """The route's own record of this client (its invocation)."""
        self.log_name = request.path
        """How log lines name this client; the route may set it (``session <id>``)."""
        self.compressed = response.headers.get("Sec-WebSocket-Extensions") is not None
        self.phase = Phase.HANDSHAKE
        self.is_open = False
        """Frames may be sent: the 101 went out and no close frame has crossed. Kept as a
        plain attribute (refreshed whenever the protocol may have changed state) because
        a fan-out reads it once per recipient."""
        self.transport: asyncio.Transport | None = None
        self._response = response
        self._early = bytearray()
        self._assembler = MessageAssembler()
        self._inbox: deque[tuple[str | bytes, int]] = deque()
        self._inbox_bytes = 0
        self._inbox_full = False
        self._writes_paused = False
        self._reading_paused = False
        self._draining: asyncio.Task[None] | None = None
        self._handshake: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # open timeout, then ping/pong
        self._close_timer: asyncio.TimerHandle | None = None
        self._watch: SendWatch  # made in attach(): judges a client over its cap
        self._outgoing: list[bytes] | None = None
        self._lost = False
        self._closed_by_us = False
        self._close_told = False
        self._end_reason = ""

    # set-up, called by upgrade() once the transport is ours

    def attach(self, transport: asyncio.Transport, early: bytes) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self._watch = SendWatch(
            transport, sock.fileno() if sock is not None else None, self.settings, self._stuck
        )
        self._early += early
        transport.set_write_buffer_limits(high=self.settings.max_send_buffer_bytes)
        self.edge.connection_opened(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.settings.open_timeout, self._open_timed_out)
        self._handshake = loop.create_task(self._hold_handshake())

    async def _hold_handshake(self) -> None:
        try:
            refusal = await self.route.on_handshake(self, self.request)
        except Exception:
            log.exception("%s: the handshake handler failed", self.request.path)
            refusal = plain(500)
        if self.phase is not Phase.HANDSHAKE:  # timed out, or the client left
            self._tell_closed(CLOSE_ABNORMAL, self._end_reason)
            return
        self._cancel_timer()
        if refusal is not None:
            self._refuse(refusal)
            self._tell_closed(CLOSE_ABNORMAL, f"handshake refused with HTTP {refusal.status}")
            return
        self.protocol.send_response(self._response)
        self.phase = Phase.OPEN
        self._write_protocol_data()
        self.route.on_open(self)
        self._schedule_ping()
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.data_received(early)

    def _open_timed_out(self) -> None:
        self._timer = None
        if self.phase is Phase.HANDSHAKE:
            log.warning(
                "%s: the req chain did not finish within %gs; refusing with 503",
                self.log_name,
                self.settings.open_timeout,
            )
            self._end_reason = "handshake timed out"
            self._refuse(plain(503, "The server did not accept the connection in time.\n"))

    def _refuse(self, refusal: HttpResponse) -> None:
        self.phase = Phase.ENDED
        transport = self._transport()
        if not transport.is_closing():
            transport.write(serialize(refusal))
            transport.close()

    # asyncio callbacks

    def data_received(self, data: bytes) -> None:
        if self.phase is not Phase.OPEN:
            if self.phase is Phase.HANDSHAKE and len(self._early) < _MAX_EARLY_BYTES:
                self._early += data  # frames sent before our 101
            return
        protocol = self.protocol
        protocol.receive_data(data)
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue  # the handshake request was consumed by upgrade()
            if frame.opcode is Opcode.PONG:
                self._pong_received()
                continue
            try:
                complete = self._assembler.feed(frame)
            except MessageError as error:
                self.fail(error.code, error.reason)
                break
            if complete is not None and not self._closed_by_us:
                self._queue(*complete)
        self._write_protocol_data()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._write_protocol_data()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_timer()
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self.transport is not None:
            self._watch.stop()
        if self.phase is Phase.HANDSHAKE:
            self.phase = Phase.ENDED
            self._end_reason = "client left during the handshake"
            return  # _hold_handshake tells the route when the req chain is done
        self.is_open = False
        if self.phase is Phase.OPEN:
            self.phase = Phase.ENDED
            self.protocol.receive_eof()
            if self._draining is None:
                self._tell_closed(*self._close_status())
            else:
                self._close_timer = asyncio.get_running_loop().call_later(
                    self.settings.close_timeout, self._stop_waiting_for_chain
                )

    def _stop_waiting_for_chain(self) -> None:
        """The client left and its message chain is still running: close without it."""
        self._inbox.clear()
        if not self._close_told:
            log.warning(
                "%s: left while a message chain was still running (%gs later); its "
                "close chain runs now",
                self.log_name,
                self.settings.close_timeout,
            )
        self._tell_closed(*self._close_status())

    def pause_writing(self) -> None:
        self._writes_paused = True
        self._update_reading()
        if not self._lost:
            self._watch.paused()

    def resume_writing(self) -> None:
        self._writes_paused = False
        self._update_reading()
        self._watch.resumed()

    def _update_reading(self) -> None:
        """Read from the client unless its messages or our unsent bytes pile up."""
        pause = (self._inbox_full or self._writes_paused) and not self._lost
        if pause != self._reading_paused and self.transport is not None:
            self._reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # incoming messages, one at a time

    def _queue(self, message: str | bytes, size: int) -> None:
        """Queue one message for the route (while we close, the client's are dropped)."""
        self._inbox.append((message, size))
        self._inbox_bytes += size
        if self._inbox_bytes > self.settings.max_message_bytes + 65536 and not self._inbox_full:
            self._inbox_full = True
            self._update_reading()
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        route, inbox = self.route, self._inbox
        while inbox:
            message, size = inbox.popleft()
            self._inbox_bytes -= size
            if self._inbox_full and self._inbox_bytes <= 65536:
                self._inbox_full = False
                self._update_reading()
            if self._closed_by_us:
                continue
            try:
                await route.on_message(self, message)
            except Exception:
                log.exception("%s: the message handler failed", self.log_name)
        self._draining = None
        if self._lost:
            if self._close_timer is not None:
                self._close_timer.cancel()
            self._tell_closed(*self._close_status())

    def _tell_closed(self, code: int, reason: str) -> None:
        if not self._close_told:
            self._close_told = True
            try:
                self.route.on_close(self, code, reason)
            finally:
                self.edge.connection_closed(self)

    def _close_status(self) -> tuple[int, str]:
        if self.protocol.state is not State.CLOSED:
            return CLOSE_ABNORMAL, ""
        closed = self.protocol.close_exc
        frame = closed.rcvd or closed.sent
        return (frame.code, frame.reason) if frame is not None else (CLOSE_ABNORMAL, "")

    # outgoing

    def send_frame(self, frame: bytes) -> None:
        """Queue an encoded, unmasked, uncompressed frame; written when the loop turns."""
        self._watch.frame(len(frame))
        outgoing = self._outgoing
        if outgoing is not None:
            outgoing.append(frame)
        else:
            self._outgoing = [frame]
            self.edge.batcher.add(self)

    def send_message(self, data: bytes, text: bool) -> None:
        """Send through the protocol (needed when an extension such as compression is on)."""
        if not self.is_open:
            return
        self.flush_frames()
        self._watch.frame(len(data))
        if text:
            self.protocol.send_text(data)
        else:
            self.protocol.send_binary(data)
        self._write_protocol_data()

    def flush_frames(self) -> None:
        frames, self._outgoing = self._outgoing, None
        if frames and self.is_open:
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            self._transport().write(data)
            self._watch.sent(len(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (after what was queued); drop the TCP connection if
        the client does not answer within ``close_timeout``."""
        if self.phase is Phase.HANDSHAKE:
            self._end_reason = "server shutting down"
            self._refuse(plain(503, "The server is shutting down.\n"))
            return
        if not self.is_open:
            return
        self.flush_frames()
        self._closed_by_us = True
        self.protocol.send_close(code, reason)
        self._write_protocol_data()

    def fail(self, code: int, reason: str) -> None:
        """Close without waiting for queued messages to be handled (limits, dead peers)."""
        if self.is_open:
            self._closed_by_us = True
            self._inbox.clear()
            self.protocol.fail(code, reason)
            self._write_protocol_data()

    def _write_protocol_data(self) -> None:
        self.is_open = self.phase is Phase.OPEN and self.protocol.state is State.OPEN
        transport = self._transport()
        for data in self.protocol.data_to_send():
            if data == _SEND_EOF:
                transport.close()  # after what is buffered; see _close_timer
            elif not transport.is_closing():
                transport.write(data)
                self._watch.sent(len(data))
        if self._close_timer is None and self.protocol.close_expected():
            self._close_timer = asyncio.get_running_loop().call_later(
                self.settings.close_timeout, transport.abort
            )

    # keepalive and stalls

    def _schedule_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval is not None and not self._lost:
            self._timer = asyncio.get_running_loop().call_later(interval, self._ping)

    def _ping(self) -> None:
        self._timer = None
        if not self.is_open:
            return
        self.flush_frames()
        self.protocol.send_ping(b"lolo")
        self._write_protocol_data()
        timeout = self.settings.ping_timeout
        if timeout is None:
            self._schedule_ping()
        else:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._ping_timed_out)

    def _pong_received(self) -> None:
        if self._timer is not None and self.settings.ping_timeout is not None:
            self._cancel_timer()
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._timer = None
        log.info("%s: no pong within %gs; closing", self.log_name, self.settings.ping_timeout)
        self.fail(1011, "keepalive ping timeout")

    def _stuck(self, why: str) -> None:
        if self.is_open:
            log.warning("%s: client is not reading; closing (1013): %s", self.log_name, why)
            self.fail(CLOSE_TRY_AGAIN_LATER, "not reading fast enough")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None
        return self.transport

    def shutdown(self) -> None:
        self.close(CLOSE_GOING_AWAY, "server shutting down")
