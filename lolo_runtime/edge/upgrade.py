"""From an HTTP request on a WebSocket path to a :class:`WebSocketConnection`.

Everything here happens before any app code runs: the method, the protocol version
(anything but 13 gets 426 with ``Sec-WebSocket-Version: 13``, as RFC 6455 4.2.2 asks;
the library would answer 400 without the header), the other handshake headers (the
websockets library's ``ServerProtocol.accept`` checks the key, the Origin allowlist and
extensions), then the route's limits and the descriptor headroom. A request that fails
any of them gets its status (405, 400, 426, 403, 503) and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Origin

from lolo_runtime.edge.responses import plain, serialize
from lolo_runtime.edge.types import HttpRequest, HttpResponse, WebSocketRoute
from lolo_runtime.edge.websocket import WebSocketConnection

if TYPE_CHECKING:
    from lolo_runtime.edge.listener import Edge

log = logging.getLogger("lolo.websocket")

WEBSOCKET_VERSION = "13"


def upgrade(
    edge: Edge,
    transport: asyncio.Transport,
    route: WebSocketRoute,
    request: HttpRequest,
    raw_head: bytes,
    early: bytes,
) -> None:
    """Validate the handshake in ``raw_head``; refuse it, or hand the transport over."""
    if request.method != "GET":
        _answer(transport, plain(405, "A WebSocket handshake is a GET.\n", ("allow", "GET")))
        return
    if _asks_for_websocket(request) and (
        (request.header("sec-websocket-version") or "").strip() != WEBSOCKET_VERSION
    ):
        log.info(
            "%s: refused a handshake with 426: Sec-WebSocket-Version %r",
            request.path,
            request.header("sec-websocket-version"),
        )
        _answer(
            transport,
            plain(
                426,
                "This server speaks WebSocket version 13 only.\n",
                ("upgrade", "websocket"),
                ("sec-websocket-version", WEBSOCKET_VERSION),
            ),
        )
        return
    settings = route.ws_settings
    origins = None if settings.origins is None else [Origin(o) for o in settings.origins]
    extensions = [ServerPerMessageDeflateFactory()] if settings.compression else None
    protocol = ServerProtocol(
        origins=origins, extensions=extensions, max_size=settings.max_message_bytes
    )
    protocol.receive_data(raw_head)
    events = protocol.events_received()
    if not events or not isinstance(events[0], Request):
        _flush(transport, protocol)  # the library's own refusal (431...), or nothing
        return
    response = protocol.accept(events[0])
    if response.status_code != 101:
        log.info(
            "%s: refused a handshake with %d: %s",
            request.path,
            response.status_code,
            response.body.decode(errors="replace").strip(),
        )
        protocol.send_response(response)
        _flush(transport, protocol)
        return
    refusal = route.admit(request) or edge.descriptor_refusal()
    if refusal is not None:
        _answer(transport, refusal)
        return
    conn = WebSocketConnection(edge, route, protocol, response, request)
    transport.set_protocol(conn)
    conn.attach(transport, early)


def _asks_for_websocket(request: HttpRequest) -> bool:
    upgrade = request.header("upgrade") or ""
    return any(token.strip().lower() == "websocket" for token in upgrade.split(","))


def _answer(transport: asyncio.Transport, response: HttpResponse) -> None:
    transport.write(serialize(response))
    transport.close()


def _flush(transport: asyncio.Transport, protocol: ServerProtocol) -> None:
    for data in protocol.data_to_send():
        if data:
            transport.write(data)
    transport.close()
