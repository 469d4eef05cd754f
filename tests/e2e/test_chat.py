"""The tutorial's chat, end to end: a real ``lolo-run`` process and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import ROOT, LoloProcess

CHAT = ROOT / "flows" / "chat.yaml"
EXTRAS = ROOT / "tests" / "e2e" / "flows" / "chat-extras.yaml"


@pytest.fixture
def chat() -> Iterator[LoloProcess]:
    with LoloProcess(CHAT) as server:
        yield server


@pytest.fixture
def extras() -> Iterator[LoloProcess]:
    with LoloProcess(EXTRAS) as server:
        yield server


@asynccontextmanager
async def client(server: LoloProcess) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A connected client and the session id its connect message gave it."""
    async with connect(server.url(), compression=None) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["connected"] is True
        yield ws, hello["yourConnectionId"]


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 5)


def test_connect_message_gives_each_client_its_own_session_id(chat: LoloProcess) -> None:
    async def scenario() -> tuple[str, str]:
        async with client(chat) as (_, first), client(chat) as (_, second):
            return first, second

    first, second = asyncio.run(scenario())
    assert first != second
    assert len(first) == 36  # a UUID
    assert f"session={first}] client has connected" in chat.stderr()


def test_message_reaches_every_other_client_and_not_its_sender(chat: LoloProcess) -> None:
    async def scenario() -> None:
        async with client(chat) as (a, a_id), client(chat) as (b, b_id), client(chat) as (c, _):
            await a.send("hi")
            assert await recv(b) == f"{a_id} says: hi"
            assert await recv(c) == f"{a_id} says: hi"
            # Once B has A's message, A's chain is done: if A had been sent its own
            # message it would come before B's reply.
            await b.send("hello A")
            assert await recv(a) == f"{b_id} says: hello A"

    asyncio.run(scenario())


def test_a_thousand_messages_arrive_in_order_at_every_other_client(chat: LoloProcess) -> None:
    count = 1000

    async def scenario() -> tuple[list[str | bytes], list[str | bytes], str]:
        async with client(chat) as (a, a_id), client(chat) as (b, _), client(chat) as (c, _):
            for i in range(count):
                await a.send(f"m{i}")
            got_b = [await recv(b) for _ in range(count)]
            got_c = [await recv(c) for _ in range(count)]
            return got_b, got_c, a_id

    got_b, got_c, a_id = asyncio.run(scenario())
    expected = [f"{a_id} says: m{i}" for i in range(count)]
    assert got_b == expected
    assert got_c == expected


def test_a_client_that_leaves_is_forgotten(chat: LoloProcess) -> None:
    async def scenario() -> str:
        async with client(chat) as (a, a_id), client(chat) as (c, _):
            async with client(chat) as (_, b_id):
                pass
            # B is gone: wait for the server to log it, then talk on.
            deadline = time.monotonic() + 5
            while f"session={b_id}] client has disconnected" not in chat.stderr():
                assert time.monotonic() < deadline, chat.stderr()
                await asyncio.sleep(0.05)
            await a.send("still here?")
            assert await recv(c) == f"{a_id} says: still here?"
            return b_id

    asyncio.run(scenario())
    log = chat.stderr()
    assert "ERROR" not in log
    assert "Traceback" not in log


def test_a_raising_handler_is_logged_and_everyone_else_is_served(extras: LoloProcess) -> None:
    async def scenario() -> str:
        async with client(extras) as (a, a_id), client(extras) as (b, b_id):
            await a.send("boom")
            # The chat branch of the same event still ran, and A's connection lives on.
            assert await recv(b) == f"{a_id} says: boom"
            await a.send("after")
            assert await recv(b) == f"{a_id} says: after"
            await b.send("to a")
            assert await recv(a) == f"{b_id} says: to a"
            return a_id

    a_id = asyncio.run(scenario())
    assert extras.stop() == 0
    log = extras.stderr()
    error_lines = [line for line in log.splitlines() if " ERROR " in line]
    assert len(error_lines) == 1, log
    assert f"[chat-extras/extras session={a_id}]" in error_lines[0]
    assert "ValueError: boom requested" in error_lines[0]
    assert "Task exception was never retrieved" not in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_closes_clients_with_1001_and_lets_handlers_finish(
    extras: LoloProcess, signum: int
) -> None:
    async def scenario() -> list[int | None]:
        async with client(extras) as (a, _), client(extras) as (b, _):
            await a.send("slow")
            await asyncio.sleep(0.2)  # the slow handler is now in flight
            extras.send_signal(signum)
            codes = []
            for ws in (a, b):
                with pytest.raises(ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                codes.append(ws.close_code)
            return codes

    assert asyncio.run(scenario()) == [1001, 1001]
    assert extras.wait() == 0
    log = extras.stderr()
    assert "slow handler finished" in log
    assert "Traceback" not in log
