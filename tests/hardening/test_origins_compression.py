"""Item 4: an Origin allowlist per trigger (others get HTTP 403), and permessage-deflate off
unless a trigger asks for it.

flows/origins.yaml serves two triggers on one port: ``/socket`` (the chat) accepts only
``https://chat.example`` and leaves compression off; ``/deflate`` (an echo) accepts any origin
and turns compression on. Sharing the port matters: the server offers deflate because one
trigger wants it, and the other must still refuse it on its own connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.hardening.wire import (
    FLOWS,
    WAIT,
    RawClient,
    alive,
    assert_clean_log,
    chatter,
    still_chatting,
)
from tests.support import ROOT, LoloProcess

ALLOWED = "https://chat.example"
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


@pytest.fixture(scope="module")
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOWS / "origins.yaml") as process:
        yield process


@pytest.fixture(scope="module")
def chat() -> Iterator[LoloProcess]:
    """The example chat, untouched: its trigger says nothing about compression."""
    with LoloProcess(ROOT / "flows" / "chat.yaml") as process:
        yield process


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://chat.example",  # same host, other scheme
        "https://chat.example:8443",  # same host, other port
        "https://chat.example.evil.example",
        "null",  # what a sandboxed iframe or a file:// page sends
    ],
)
def test_a_foreign_origin_gets_403(server: LoloProcess, origin: str) -> None:
    with RawClient(server.port) as raw:
        response = raw.handshake("/socket", {"Origin": origin})
    assert response.status == 403
    assert "sec-websocket-accept" not in response.headers
    assert alive(server)


def test_a_missing_origin_gets_403_when_origins_are_listed(server: LoloProcess) -> None:
    """Browsers always send Origin; a client that sends none is not on the list either."""
    with RawClient(server.port) as raw:
        assert raw.handshake("/socket").status == 403


def test_the_library_client_sees_403_too(server: LoloProcess) -> None:
    async def scenario() -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url(), origin=Origin("https://evil.example")):
                pass
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == 403


def test_the_allowed_origin_connects_and_chats(server: LoloProcess) -> None:
    async def scenario() -> None:
        async with chatter(server, origin=ALLOWED) as a, chatter(server, origin=ALLOWED) as b:
            await still_chatting(a, b)

    asyncio.run(scenario())
    assert_clean_log(server)


def test_a_trigger_without_origins_accepts_any_origin(server: LoloProcess) -> None:
    with RawClient(server.port) as raw:
        assert raw.handshake("/deflate", {"Origin": "https://anywhere.example"}).status == 101


def extensions_answered(port: int, path: str) -> str | None:
    """Offer permessage-deflate in a raw handshake; return the server's extensions header."""
    with RawClient(port) as raw:
        response = raw.handshake(
            path, {"Origin": ALLOWED, "Sec-WebSocket-Extensions": DEFLATE_OFFER}
        )
        assert response.status == 101
        return response.headers.get("sec-websocket-extensions")


def test_compression_is_off_by_default(chat: LoloProcess) -> None:
    assert extensions_answered(chat.port, "/socket") is None

    async def scenario() -> str | None:
        # The websockets client offers permessage-deflate unless told otherwise.
        async with connect(chat.url()) as ws:
            await asyncio.wait_for(ws.recv(), WAIT)
            assert ws.response is not None
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert asyncio.run(scenario()) is None


def test_compression_stays_off_on_a_trigger_that_shares_the_port_with_one_that_wants_it(
    server: LoloProcess,
) -> None:
    assert extensions_answered(server.port, "/socket") is None


def test_compression_is_on_when_the_trigger_asks_for_it(server: LoloProcess) -> None:
    answered = extensions_answered(server.port, "/deflate")
    assert answered is not None and answered.startswith("permessage-deflate")

    async def scenario() -> str | None:
        async with connect(server.url("/deflate")) as ws:
            message = "compress me " * 10_000
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), WAIT) == message
            assert ws.response is not None
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    negotiated = asyncio.run(scenario())
    assert negotiated is not None and negotiated.startswith("permessage-deflate")
    assert_clean_log(server)
