"""Item 1: a message over ``max_message_bytes`` closes its sender with 1009, nobody else."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.hardening.wire import (
    FLOWS,
    OP_BINARY,
    WAIT,
    Chatter,
    RawClient,
    assert_clean_log,
    chatter,
    close_codes,
    frame,
    still_chatting,
    wait_until,
)
from tests.support import LoloProcess

LIMIT = 1024  # flows/size.yaml


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOWS / "size.yaml") as process:
        yield process


async def closed_code(victim: Chatter) -> int | None:
    """Read until the server closes ``victim``; return the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(victim.ws.recv(), WAIT)
    received = closed.value.rcvd
    assert received is not None, "closed without a close frame"
    return received.code


@pytest.mark.parametrize(
    "oversize",
    [
        pytest.param("x" * (LIMIT + 1), id="text-one-byte-over"),
        pytest.param("é" * (LIMIT // 2 + 1), id="text-over-in-utf8-bytes"),
        pytest.param(b"\0" * (LIMIT + 1), id="binary-one-byte-over"),
        pytest.param(["y" * 600, "y" * 600], id="fragmented-text-over-in-total"),
    ],
)
def test_oversize_message_closes_its_sender_with_1009_and_others_chat_on(
    server: LoloProcess, oversize: str | bytes | list[str]
) -> None:
    async def scenario() -> tuple[int | None, str]:
        async with chatter(server) as a, chatter(server) as b, chatter(server) as big:
            await big.send(oversize)  # a list is sent as one fragmented message
            code = await closed_code(big)
            await still_chatting(a, b)
            return code, big.session_id

    code, big_id = asyncio.run(scenario())
    assert code == 1009
    # The server's close chain ran for the sender, and says why: the library failed the
    # connection with 1009, and the client never got to answer.
    assert close_codes(server).get(big_id) == 1009, server.stderr()
    assert_clean_log(server)


def test_a_frame_announcing_16_MiB_is_refused_before_its_payload_arrives(
    server: LoloProcess,
) -> None:
    """The header alone says the frame is too big: the server closes with 1009 without
    waiting for (or buffering) the 16 MiB that would follow."""
    header = frame(OP_BINARY, b"", mask=False)[:1] + bytes([0x80 | 127])
    header += struct.pack("!Q", 16 * 1024 * 1024) + b"mask"

    async def scenario() -> int | None:
        async with chatter(server) as a, chatter(server) as b:
            with RawClient(server.port) as raw:
                assert raw.handshake().status == 101
                raw.send(header + b"\0" * 1024)
                code, _ = await asyncio.to_thread(raw.read_until_close)
            await still_chatting(a, b)
            return code

    assert asyncio.run(scenario()) == 1009
    assert_clean_log(server)


def test_a_message_of_exactly_the_limit_is_delivered(server: LoloProcess) -> None:
    exact_text = "é" * (LIMIT // 2)  # 1024 bytes of UTF-8
    exact_binary = b"\xff" * LIMIT

    async def scenario() -> tuple[str | bytes, str | bytes, str]:
        async with chatter(server) as a, chatter(server) as b:
            await a.send(exact_text)
            got_text = await b.recv()
            await a.send(exact_binary)
            got_binary = await b.recv()
            await still_chatting(a, b)
            return got_text, got_binary, a.session_id

    got_text, got_binary, a_id = asyncio.run(scenario())
    assert got_text == f"{a_id} says: {exact_text}"
    assert got_binary == f"{a_id} says: {exact_binary!r}"
    assert_clean_log(server)


def test_many_oversize_senders_leave_the_chat_working(server: LoloProcess) -> None:
    async def one_oversize() -> int | None:
        async with chatter(server) as big:
            await big.send("z" * (4 * LIMIT))
            return await closed_code(big)

    async def scenario() -> list[int | None]:
        async with chatter(server) as a, chatter(server) as b:
            codes = await asyncio.gather(*(one_oversize() for _ in range(20)))
            await still_chatting(a, b)
            # Every closed client left the server's table: only A and B remain.
            await wait_until(lambda: len(close_codes(server)) == 20, "20 close chains")
            return list(codes)

    assert asyncio.run(scenario()) == [1009] * 20
    assert_clean_log(server)
