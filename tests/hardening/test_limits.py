"""Item 5: at most ``max_connections`` clients per trigger (the next handshake gets HTTP 503),
and at most ``max_messages_per_second`` per client after a ``burst`` (more closes with 1008).

flows/limits.yaml allows 3 connections, 10 messages a second and a burst of 5.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.hardening.wire import (
    FLOWS,
    WAIT,
    Chatter,
    RawClient,
    alive,
    assert_clean_log,
    chatter,
    close_codes,
    figure,
    still_chatting,
    wait_until,
)
from tests.support import LoloProcess

MAX_CONNECTIONS = 3
RATE = 10
BURST = 5


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOWS / "limits.yaml") as process:
        yield process


def refused_status(server: LoloProcess) -> tuple[int, bytes]:
    with RawClient(server.port) as raw:
        response = raw.handshake()
    return response.status, response.body


def test_the_connection_past_the_limit_gets_503_and_a_freed_slot_is_reused(
    server: LoloProcess,
) -> None:
    async def scenario() -> None:
        async with chatter(server) as a, chatter(server) as b:
            async with chatter(server):
                for _ in range(10):  # refused handshakes must not use up slots
                    status, body = await asyncio.to_thread(refused_status, server)
                    assert (status, body) == (503, b"Too many connections.\n")
                await still_chatting(a, b)
            # The third client left: once its close chain ran, its slot is free again.
            await wait_until(lambda: len(close_codes(server)) == 1, "the third client's close")
            async with chatter(server) as c:
                await still_chatting(a, c)
                status, _ = await asyncio.to_thread(refused_status, server)
                assert status == 503

    asyncio.run(scenario())
    assert_clean_log(server)


async def read_until(client: Chatter, last: str) -> list[str | bytes]:
    """Messages ``client`` receives up to and including ``last``."""
    got: list[str | bytes] = []
    while not got or got[-1] != last:
        got.append(await client.recv())
    return got


def test_a_flood_closes_the_flooder_with_1008_and_the_others_chat_on(
    server: LoloProcess,
) -> None:
    """50 messages at once: the flooder gets close code 1008 after about ``burst`` of them,
    the other clients get what was let through, in order, and chat on.

    The closing handshake must then complete: the flooder's library answers the server's
    close frame at once, so the server's ``close`` chain should run within moments and
    report 1008 (3 s are allowed)."""

    async def scenario() -> tuple[int, list[str | bytes], list[str | bytes], str, float | None]:
        async with chatter(server) as a, chatter(server) as b:
            # close_timeout: on the way out, wait at most 1 s for the server to hang up.
            async with chatter(server, close_timeout=1) as flooder:
                for i in range(50):
                    try:
                        await flooder.send(f"flood {i}")
                    except ConnectionClosed:
                        break
                # Reading on until the connection ends: the close frame the library
                # answered is in the exception it raises.
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(flooder.ws.recv(), WAIT)
                assert closed.value.rcvd is not None, "closed without a close frame"
                code = closed.value.rcvd.code
                start = time.monotonic()
                flooder_id = flooder.session_id
                try:  # the flooder's answer is on its way: the server should now let go
                    await wait_until(
                        lambda: flooder_id in close_codes(server), "the flooder's close chain", 3
                    )
                    closing: float | None = time.monotonic() - start
                except AssertionError:
                    closing = None
            # A and B got the flood up to the cut, then each other's next message.
            await a.send("after the flood")
            got_b = await read_until(b, f"{a.session_id} says: after the flood")
            await b.send("seen")
            got_a = await read_until(a, f"{b.session_id} says: seen")
            await still_chatting(a, b)
            return code, got_a, got_b, flooder_id, closing

    code, got_a, got_b, flooder_id, closing = asyncio.run(scenario())
    assert code == 1008
    flood = got_b[:-1]
    figure("limits.flood_messages_let_through", f"{len(flood)} of 50 (burst {BURST})")
    assert BURST <= len(flood) < 50
    assert flood == [f"{flooder_id} says: flood {i}" for i in range(len(flood))]
    assert got_a[:-1] == flood
    assert f"session {flooder_id}: over {RATE} messages/s; closing" in server.stderr()
    assert alive(server)
    assert_clean_log(server)
    figure(
        "limits.flood_close_chain_after_s",
        "not within 3 s" if closing is None else f"{closing:.2f}",
    )
    assert closing is not None, (
        "the server sent 1008 and the flooder answered, but the server's close chain had not "
        "run 3 s later: the trigger stopped reading the flooder's messages (its incoming "
        "queue is full of unread flood messages, so the library stops reading the socket) "
        "and so never sees the answer to its close frame"
    )
    assert close_codes(server)[flooder_id] == 1008


def test_a_burst_and_a_steady_pace_under_the_rate_are_allowed(server: LoloProcess) -> None:
    async def scenario() -> list[str | bytes]:
        async with chatter(server) as a, chatter(server) as b:
            for i in range(BURST):  # all at once
                await a.send(f"burst {i}")
            await asyncio.sleep(BURST / RATE)  # the bucket refills
            for i in range(15):  # 9 a second, under the rate of 10
                await a.send(f"steady {i}")
                await asyncio.sleep(1 / (RATE - 1))
            got = [await b.recv() for _ in range(BURST + 15)]
            await still_chatting(a, b)
            assert close_codes(server) == {}  # nobody was closed
            return got

    got = asyncio.run(scenario())
    assert len(got) == BURST + 15
    assert_clean_log(server)
