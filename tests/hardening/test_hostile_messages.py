"""Item 7: hostile messages. Arbitrary payloads come back intact, broken frames close only
the client that sent them (with the code RFC 6455 asks for), deep JSON breaks only the
handler that parses it, and through all of it the server serves everybody else.

flows/hostile.yaml: ``/socket`` is the chat plus an echo to the sender; ``/json`` answers
each message with the type ``json.loads`` found (handlers/json_probe.py, which lets
``RecursionError`` escape, as a careless handler would).
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tests.hardening.wire import (
    FLOWS,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    WAIT,
    RawClient,
    alive,
    assert_clean_log,
    chatter,
    close_codes,
    figure,
    frame,
    is_history,
    server_pid,
    status_kib,
    still_chatting,
    wait_until,
)
from tests.support import LoloProcess

MIB = 1024


@pytest.fixture(scope="module")
def server() -> Iterator[LoloProcess]:
    """One server for the cases that must leave no error in its log."""
    with LoloProcess(FLOWS / "hostile.yaml") as process:
        yield process


@pytest.fixture
def fresh() -> Iterator[LoloProcess]:
    """A server of its own, for a case that logs an error or grows the server's memory."""
    with LoloProcess(FLOWS / "hostile.yaml") as process:
        yield process


def expected_broadcast(sender: str, payload: str | bytes) -> str:
    """What the chat (nodes/handle_messages.py) tells the others."""
    return (
        f"{sender} says: {payload}" if isinstance(payload, str) else f"{sender} says: {payload!r}"
    )


PAYLOADS = st.one_of(
    st.text(max_size=3000),  # any code point but lone surrogates, which UTF-8 cannot carry
    st.binary(max_size=3000),
    st.sampled_from(
        [
            "",
            "\0",
            "\0" * 1000,
            "\ufeff",
            "\u202e",
            "%s%n%x",
            "${HOME}",
            "$$",
            '{"history":0',
            "\r\n\r\n",
            "🙂" * 500,
            b"",
            b"\0",
            b"\xff" * 100,
        ]
    ),
)


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(payloads=st.lists(PAYLOADS, min_size=1, max_size=5))
def test_arbitrary_payloads_come_back_intact_and_reach_the_others(
    server: LoloProcess, payloads: list[str | bytes]
) -> None:
    async def scenario() -> None:
        async with chatter(server) as a, chatter(server) as b:
            for payload in payloads:
                await a.send(payload)
                assert await a.recv() == payload  # the echo: same type, same bytes
                assert await b.recv() == expected_broadcast(a.session_id, payload)

    asyncio.run(scenario())
    assert alive(server)


def test_the_server_survived_the_arbitrary_payloads(server: LoloProcess) -> None:
    """Runs after the property test (same server): nothing was logged as an error."""
    assert alive(server)
    assert_clean_log(server)


def text_frames(*parts: bytes) -> bytes:
    """One text message split into fragments (a single frame when one part is given)."""
    out = b""
    for i, part in enumerate(parts):
        out += frame(OP_TEXT if i == 0 else OP_CONT, part, fin=i == len(parts) - 1)
    return out


BROKEN_FRAMES = {
    # name: (bytes to send after the handshake, close code the server must send)
    "invalid-utf8": (frame(OP_TEXT, b"ok \xff\xfe"), 1007),
    "overlong-utf8": (frame(OP_TEXT, b"\xc0\xaf"), 1007),
    "utf8-encoded-surrogate": (frame(OP_TEXT, b"\xed\xa0\x80"), 1007),
    "code-point-past-unicode": (frame(OP_TEXT, b"\xf4\x90\x80\x80"), 1007),
    "truncated-utf8-at-message-end": (frame(OP_TEXT, b"caf\xc3"), 1007),
    "invalid-utf8-in-a-later-fragment": (text_frames(b"fine ", b"\xff", b"end"), 1007),
    "close-reason-not-utf8": (frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
    "unmasked-client-frame": (frame(OP_TEXT, b"hello", mask=False), 1002),
    "reserved-opcode": (frame(0x3, b"?"), 1002),
    "reserved-control-opcode": (frame(0xB, b"?"), 1002),
    "rsv1-without-extension": (frame(OP_TEXT, b"x", rsv1=True), 1002),
    "control-frame-over-125-bytes": (frame(OP_PING, b"p" * 126), 1002),
    "fragmented-control-frame": (frame(OP_PING, b"p", fin=False), 1002),
    "continuation-without-start": (frame(OP_CONT, b"orphan"), 1002),
    "new-message-inside-a-fragmented-one": (
        frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"),
        1002,
    ),
    "close-code-out-of-range": (frame(OP_CLOSE, struct.pack("!H", 999)), 1002),
    "close-code-reserved": (frame(OP_CLOSE, struct.pack("!H", 1005)), 1002),
    "close-payload-of-one-byte": (frame(OP_CLOSE, b"\x03"), 1002),
}


@pytest.mark.parametrize("case", list(BROKEN_FRAMES))
def test_a_broken_frame_closes_only_its_sender_with_the_right_code(
    server: LoloProcess, case: str
) -> None:
    data, code = BROKEN_FRAMES[case]

    async def scenario() -> tuple[int | None, str]:
        async with chatter(server) as a, chatter(server) as b:
            with RawClient(server.port) as raw:
                assert raw.handshake().status == 101
                opcode, hello = raw.read_frame()
                assert opcode == OP_TEXT
                raw_id = json.loads(hello)["yourConnectionId"]
                raw.send(data)
                got, _ = await asyncio.to_thread(raw.read_until_close)
            await still_chatting(a, b, echo=True)
            # The server forgot the client: its close chain ran.
            await wait_until(lambda: raw_id in close_codes(server), "its close chain")
            return got, raw_id

    got, _ = asyncio.run(scenario())
    assert got == code
    assert alive(server)
    assert_clean_log(server)


def test_utf8_split_across_fragments_is_valid_and_delivered_whole(server: LoloProcess) -> None:
    """The negative control of the UTF-8 cases: a character may straddle two fragments."""

    async def scenario() -> tuple[int, bytes]:
        async with chatter(server) as b:
            with RawClient(server.port) as raw:
                assert raw.handshake().status == 101
                raw.read_frame()  # hello
                raw.send(text_frames(b"caf\xc3", b"\xa9 ", "🙂".encode()[:1], "🙂".encode()[1:]))
                opcode, echoed = await asyncio.to_thread(raw.read_frame)
                while is_history(echoed.decode()):
                    opcode, echoed = await asyncio.to_thread(raw.read_frame)
                said = await b.recv()
                assert isinstance(said, str) and said.endswith(" says: café 🙂")
            return opcode, echoed

    assert asyncio.run(scenario()) == (OP_TEXT, "café 🙂".encode())


def one_byte_fragments(message: bytes) -> bytes:
    return b"".join(
        frame(OP_BINARY if i == 0 else OP_CONT, message[i : i + 1], fin=i == len(message) - 1)
        for i in range(len(message))
    )


def test_a_message_in_thousands_of_tiny_fragments_is_reassembled(server: LoloProcess) -> None:
    message = bytes(range(256)) * 15  # 3840 bytes, one fragment each

    async def scenario() -> bytes:
        with RawClient(server.port) as raw:
            assert raw.handshake().status == 101
            raw.read_frame()  # hello
            raw.send(one_byte_fragments(message))
            opcode, echoed = await asyncio.to_thread(raw.read_frame)
            while opcode != OP_BINARY:  # skip a history frame
                opcode, echoed = await asyncio.to_thread(raw.read_frame)
            return echoed

    assert asyncio.run(scenario()) == message
    assert_clean_log(server)


def test_a_message_in_too_many_fragments_closes_its_sender_with_1009(
    server: LoloProcess,
) -> None:
    """The edge refuses a message of more than 4096 fragments (edge/messages.py)
    whatever its size: each fragment costs the server work."""

    async def scenario() -> int | None:
        async with chatter(server) as a, chatter(server) as b:
            with RawClient(server.port) as raw:
                assert raw.handshake().status == 101
                raw.read_frame()  # hello
                raw.send(one_byte_fragments(b"f" * 5000))
                code, _ = await asyncio.to_thread(raw.read_until_close)
            await still_chatting(a, b, echo=True)
            return code

    assert asyncio.run(scenario()) == 1009
    assert_clean_log(server)


DEEP = {
    "array": "[" * 500_000 + "]" * 500_000,
    "object": '{"a":' * 150_000 + "0" + "}" * 150_000,
}


@pytest.mark.parametrize("shape", list(DEEP))
def test_deep_json_breaks_only_the_handler_that_parses_it(fresh: LoloProcess, shape: str) -> None:
    server = fresh
    document = DEEP[shape]

    async def scenario() -> tuple[str | bytes, str | bytes]:
        async with chatter(server) as a, chatter(server) as b, chatter(server) as deep_chatter:
            # Through the chat: just text, relayed and echoed whole.
            await deep_chatter.send(document)
            assert await deep_chatter.recv() == document
            assert await a.recv() == f"{deep_chatter.session_id} says: {document}"
            assert await b.recv() == f"{deep_chatter.session_id} says: {document}"
            # Through the JSON handler: it raises, and the connection lives on.
            async with connect(server.url("/json"), compression=None, max_size=None) as parser:
                await parser.send(document)
                await parser.send('{"after": [1, 2]}')
                answer = await asyncio.wait_for(parser.recv(), WAIT)
                await parser.send(b"\x00binary")
                binary_answer = await asyncio.wait_for(parser.recv(), WAIT)
            await still_chatting(a, b, echo=True)
            return answer, binary_answer

    answer, binary_answer = asyncio.run(scenario())
    assert json.loads(answer) == {"parsed": "dict"}
    assert json.loads(binary_answer) == {"parsed": "binary"}
    log = server.stderr()
    assert log.count(" ERROR ") == 1, log
    assert re.search(
        r"ERROR +\[hard-hostile/json-probe session=[0-9a-f-]{36}\] handler raised "
        r"RecursionError",
        log,
    ), log
    assert alive(server)


def test_a_ping_flood_from_a_client_that_never_reads_keeps_memory_bounded(
    fresh: LoloProcess,
) -> None:
    """Pings are answered by the websockets library, not by the trigger: a client that sends
    64 MiB of pings and reads none of the pongs must not make the server hold 64 MiB of
    pongs. The trigger's send buffer cap is 1 MiB (the default); 32 MiB of growth is allowed.
    """
    server = fresh
    pid = server_pid(server)
    ping = frame(OP_PING, b"p" * 125)
    batch = ping * 1000
    total = 64 * 1024 * 1024

    async def scenario() -> tuple[int, int, int, float]:
        async with chatter(server) as a, chatter(server) as b:
            rss_before = status_kib(pid, "VmRSS")
            sent = 0
            start = time.monotonic()
            with RawClient(server.port, rcvbuf=4096, timeout=2) as raw:
                assert raw.handshake().status == 101
                try:
                    while sent < total:
                        await asyncio.to_thread(raw.send, batch)
                        sent += len(batch)
                except OSError:
                    pass  # the server cut the pinger off: allowed, even welcome
                seconds = time.monotonic() - start
                rss_during = status_kib(pid, "VmRSS")
            await still_chatting(a, b, echo=True)
            return rss_before, rss_during, sent, seconds

    rss_before, rss_during, sent, seconds = asyncio.run(scenario())
    figure(
        "hostile.ping_flood_rss_kib",
        f"before {rss_before}, after {sent // (1024 * 1024)} MiB of pings in "
        f"{seconds:.1f}s: {rss_during}",
    )
    assert alive(server)
    assert rss_during - rss_before < 32 * MIB, (
        f"the server's memory grew by {(rss_during - rss_before) // MIB} MiB while a client "
        f"sent {sent // (1024 * 1024)} MiB of pings without reading the pongs: pongs are "
        "queued without any cap"
    )


def test_binary_and_text_mixed_at_speed_from_many_clients(server: LoloProcess) -> None:
    """Ten clients each send 20 messages, text and binary in turn, as fast as their echoes
    come back; two listeners get all 200, each sender's in its order."""

    def payload(i: int, j: int) -> str | bytes:
        return f"{i}-{j}" if j % 2 else bytes([i, j]) * 100

    async def one(i: int) -> str:
        async with chatter(server) as c:
            for j in range(20):
                await c.send(payload(i, j))
                while (await c.recv()) != payload(i, j):  # others' broadcasts come between
                    pass
            return c.session_id

    async def scenario() -> tuple[list[str], list[str | bytes], list[str | bytes]]:
        async with chatter(server) as a, chatter(server) as b:
            ids = await asyncio.gather(*(one(i) for i in range(10)))
            got_a = [await a.recv() for _ in range(200)]
            got_b = [await b.recv() for _ in range(200)]
            await still_chatting(a, b, echo=True)
            return list(ids), got_a, got_b

    ids, got_a, got_b = asyncio.run(scenario())
    for got in (got_a, got_b):
        for i, session in enumerate(ids):
            mine = [m for m in got if isinstance(m, str) and m.startswith(f"{session} says: ")]
            assert mine == [expected_broadcast(session, payload(i, j)) for j in range(20)]
    assert alive(server)
    assert_clean_log(server)
