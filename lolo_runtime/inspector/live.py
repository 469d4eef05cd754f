"""``/_lolo/live``: the WebSocket that keeps the inspector's page up to date.

The protocol, server to page, is JSON text messages:

* ``{"type": "hello", "needsKey": bool}`` first. When a key is needed, the page's first
  message must be the text ``Bearer KEY`` within :data:`KEY_TIMEOUT` seconds; a wrong or
  missing key closes the socket with 4401.
* ``{"type": "update", "figures": {...}, "log": [...]}`` once the page may see the
  figures, then at most every :data:`INTERVAL` seconds, and only when something changed:
  ``figures`` (see ``figures.as_json``) when they differ from what that page was last
  sent, ``log`` with the log lines it has not seen (``{"seq", "level", "text"}``).

One timer runs while a page is watching, none otherwise: the figures are read once per
tick for every page, whatever their number.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from lolo_runtime.channels.hub import Outgoing
from lolo_runtime.edge.responses import plain
from lolo_runtime.edge.types import HttpRequest, HttpResponse, WebSocketSettings
from lolo_runtime.edge.websocket import WebSocketConnection
from lolo_runtime.inspector.access import CLOSE_NEEDS_KEY, Access, origin_refusal, presented_key
from lolo_runtime.inspector.logtail import LogTail

INTERVAL = 0.25
"""Seconds between updates, at least: at most four a second."""
KEY_TIMEOUT = 10.0
MAX_VIEWERS = 16
"""Pages watching at once; more get 503 (each costs a JSON encoding per tick)."""

QUIET = logging.getLogger("lolo.inspector.socket")
"""The logger the inspector's sockets give the websockets library in place of its own:
at ``--log-level debug`` the library logs every frame, and here those would be the key a
page sends (whatever its spelling) and the updates themselves, which would then come
back in the log tail of the next update, and so on. Warnings still get through."""
QUIET.setLevel(logging.WARNING)


class Viewer:
    """One page on the socket."""

    __slots__ = ("allowed", "conn", "figures", "key_timer", "log_seq")

    def __init__(self, conn: WebSocketConnection) -> None:
        self.conn = conn
        self.allowed = False
        self.figures = ""
        """The figures it was last sent, as JSON text."""
        self.log_seq = 0
        self.key_timer: asyncio.TimerHandle | None = None


class LiveRoute:
    """The socket's ``WebSocketRoute``."""

    ws_settings = WebSocketSettings(
        max_message_bytes=4096,
        compression=False,
        max_send_buffer_bytes=1024 * 1024,
        send_stall_timeout=10.0,
    )

    def __init__(
        self,
        access: Access,
        figures: Callable[[], dict[str, Any]],
        logtail: LogTail,
        interval: float = INTERVAL,
    ) -> None:
        self.access = access
        self.figures = figures
        self.logtail = logtail
        self.interval = interval
        self._viewers: dict[WebSocketConnection, Viewer] = {}
        self._ticker: asyncio.TimerHandle | None = None

    @property
    def watching(self) -> int:
        """Pages being sent updates now."""
        return sum(1 for v in self._viewers.values() if v.allowed)

    # the edge's WebSocketRoute protocol

    def admit(self, request: HttpRequest) -> HttpResponse | None:
        refusal = self.access.where_refusal(request) or origin_refusal(request)
        if refusal is None and len(self._viewers) >= MAX_VIEWERS:
            refusal = plain(503, "Too many inspector pages open.\n")
        return refusal

    async def on_handshake(
        self, conn: WebSocketConnection, request: HttpRequest
    ) -> HttpResponse | None:
        conn.log_name = "inspector page"
        conn.protocol.logger = QUIET
        conn.session = self._viewers[conn] = Viewer(conn)
        return None

    def on_open(self, conn: WebSocketConnection) -> None:
        viewer: Viewer = conn.session
        _send(conn, {"type": "hello", "needsKey": self.access.needs_key})
        if self.access.needs_key:
            viewer.key_timer = asyncio.get_running_loop().call_later(KEY_TIMEOUT, _refuse, conn)
        else:
            self._allow(viewer)

    async def on_message(self, conn: WebSocketConnection, message: str | bytes) -> None:
        viewer: Viewer = conn.session
        if viewer.allowed:
            return  # the page has nothing more to say
        if viewer.key_timer is not None:
            viewer.key_timer.cancel()
            viewer.key_timer = None
        text = message if isinstance(message, str) else None
        if self.access.key_matches(presented_key(text)):
            self._allow(viewer)
        else:
            _refuse(conn)

    def on_close(self, conn: WebSocketConnection, code: int, reason: str) -> None:
        viewer = self._viewers.pop(conn, None)
        if viewer is not None and viewer.key_timer is not None:
            viewer.key_timer.cancel()
        if not self.watching and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    # updates

    def _allow(self, viewer: Viewer) -> None:
        viewer.allowed = True
        self._update(viewer, self._figures_text())
        if self._ticker is None:
            self._schedule()

    def _schedule(self) -> None:
        self._ticker = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self._ticker = None
        watching = [v for v in self._viewers.values() if v.allowed]
        if not watching:
            return
        figures = self._figures_text()
        for viewer in watching:
            self._update(viewer, figures)
        self._schedule()

    def _figures_text(self) -> str:
        return json.dumps(self.figures(), separators=(",", ":"))

    def _update(self, viewer: Viewer, figures: str) -> None:
        """Send ``viewer`` what changed since its last update, if anything did."""
        lines = self.logtail.since(viewer.log_seq)
        if figures == viewer.figures and not lines:
            return
        parts = ['{"type":"update"']
        if figures != viewer.figures:
            parts.append(f',"figures":{figures}')
            viewer.figures = figures
        if lines:
            log = [{"seq": line.seq, "level": line.level, "text": line.text} for line in lines]
            parts.append(f',"log":{json.dumps(log, separators=(",", ":"))}')
            viewer.log_seq = lines[-1].seq
        parts.append("}")
        if viewer.conn.is_open:
            viewer.conn.send_frame(Outgoing.of("".join(parts)).frame)

    def close(self) -> None:
        """Stop the timers (the edge closes the sockets themselves)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for viewer in self._viewers.values():
            if viewer.key_timer is not None:
                viewer.key_timer.cancel()
                viewer.key_timer = None


def _send(conn: WebSocketConnection, message: dict[str, Any]) -> None:
    if conn.is_open:
        conn.send_frame(Outgoing.of(json.dumps(message, separators=(",", ":"))).frame)


def _refuse(conn: WebSocketConnection) -> None:
    conn.close(CLOSE_NEEDS_KEY, "a valid inspector key is needed")
