"""Item 2: a client that stops reading is cut off at ``max_send_buffer_bytes`` (close 1013)
while the clients that read get every message, and the server's memory stays bounded.

flows/slow.yaml caps the unsent bytes per client at 256 KiB. One sender floods the chat with
1000 messages of 16 KiB (16 MiB for every other client to receive). Three fast clients read
everything; the sender waits whenever it is more than ``WINDOW`` messages ahead of the
slowest of them, so a fast client never has more than ``WINDOW`` x 16 KiB (128 KiB, under the
cap) in flight and can never be mistaken for a slow one. The slow clients get the same
16 MiB each and read none of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.hardening.wire import (
    FLOWS,
    OP_TEXT,
    WAIT,
    Chatter,
    RawClient,
    alive,
    assert_clean_log,
    chatter,
    close_codes,
    figure,
    server_pid,
    status_kib,
    still_chatting,
    wait_until,
)
from tests.support import LoloProcess

COUNT = 1000
SIZE = 16 * 1024
WINDOW = 8
CAP = 256 * 1024  # flows/slow.yaml
MIB = 1024


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOWS / "slow.yaml") as process:
        yield process


def payload(i: int) -> str:
    return f"{i:06d}:" + "x" * (SIZE - 7)


async def read_all(client: Chatter, count: int) -> None:
    while len(client.received) < count:
        client.received.append(await client.recv())


async def flood(sender: Chatter, fast: list[Chatter]) -> None:
    """Send COUNT messages, never more than WINDOW ahead of the slowest fast reader."""
    for i in range(COUNT):
        while i - min(len(c.received) for c in fast) >= WINDOW:
            await asyncio.sleep(0.002)
        await sender.send(payload(i))


def slow_warning(server: LoloProcess, session_id: str) -> bool:
    return f"session {session_id}: client is not reading; closing" in server.stderr()


def test_fast_clients_get_everything_and_a_paused_reader_is_cut_off_with_1013(
    server: LoloProcess,
) -> None:
    pid = server_pid(server)

    async def scenario() -> dict[str, object]:
        async with (
            chatter(server) as sender,
            chatter(server) as f1,
            chatter(server) as f2,
            chatter(server) as f3,
            chatter(server, ping_interval=None) as paused,
        ):
            # ``paused`` stops calling recv(): the client library then stops reading its
            # socket once a few messages are queued, as a stalled app would.
            fast = [f1, f2, f3]
            rss_before = status_kib(pid, "VmRSS")
            readers = [asyncio.create_task(read_all(c, COUNT)) for c in fast]
            started = time.monotonic()
            flooding = asyncio.create_task(flood(sender, fast))
            await wait_until(
                lambda: slow_warning(server, paused.session_id),
                "the server to cut the paused reader off",
                60,
            )
            # Cut off: it reads again at once, so that it is there to answer the close
            # frame. It gets what was queued before the cut, then 1013.
            got = 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await paused.recv()
                    got += 1
            assert closed.value.rcvd is not None
            code = closed.value.rcvd.code
            await asyncio.wait_for(flooding, 60)
            await asyncio.wait_for(asyncio.gather(*readers), 60)
            flood_seconds = time.monotonic() - started
            rss_after_flood = status_kib(pid, "VmRSS")
            await still_chatting(sender, f1)
            return {
                "fast": [c.received for c in fast],
                "sender": sender.session_id,
                "paused_got": got,
                "paused_code": code,
                "rss_before": rss_before,
                "rss_after_flood": rss_after_flood,
                "seconds": flood_seconds,
            }

    result = asyncio.run(scenario())
    sender_id = result["sender"]
    expected = [f"{sender_id} says: {payload(i)}" for i in range(COUNT)]
    for received in result["fast"]:  # type: ignore[attr-defined]
        assert received == expected  # 100%, in order
    assert result["paused_code"] == 1013
    paused_got = result["paused_got"]
    assert isinstance(paused_got, int)
    assert paused_got < COUNT  # it was cut off before the end of the flood
    rss_before, rss_after = result["rss_before"], result["rss_after_flood"]
    assert isinstance(rss_before, int) and isinstance(rss_after, int)
    assert rss_after - rss_before < 200 * MIB
    figure("slow.flood", f"{COUNT} x {SIZE // 1024} KiB to 4 readers in {result['seconds']:.2f}s")
    figure("slow.paused_reader_got_before_1013", f"{result['paused_got']} of {COUNT}")
    figure(
        "slow.rss_kib",
        f"before {rss_before}, after flood {rss_after}, "
        f"peak {status_kib(server_pid(server), 'VmHWM')}",
    )
    assert alive(server)
    assert_clean_log(server)


def test_a_client_that_never_reads_again_is_disconnected(server: LoloProcess) -> None:
    """A raw socket that completes the handshake and never reads another byte. The server
    must not only *decide* to close it (1013) but actually let it go: its close chain runs,
    its buffer is freed and its connection slot returns. A client that does not read cannot
    answer a close frame either, so the server has to give up on the closing handshake
    after a while: 12 s are allowed (the websockets library's close timeout is 10 s).

    Keepalive is off in flows/slow.yaml, so nothing but the cap can let the client go.
    """
    pid = server_pid(server)

    async def scenario() -> tuple[int, int]:
        async with chatter(server) as sender, chatter(server) as f1:
            with RawClient(server.port, rcvbuf=4096) as raw:
                assert raw.handshake().status == 101
                opcode, data = raw.read_frame()
                assert opcode == OP_TEXT
                hello = json.loads(data)
                raw_id = hello["yourConnectionId"]
                rss_before = status_kib(pid, "VmRSS")
                reader = asyncio.create_task(read_all(f1, COUNT))
                await flood(sender, [f1])
                await asyncio.wait_for(reader, 60)
                decided = time.monotonic()
                await wait_until(lambda: slow_warning(server, raw_id), "the 1013 decision")
                try:
                    await wait_until(
                        lambda: raw_id in close_codes(server),
                        "the server to drop the non-reading client",
                        12,
                    )
                except AssertionError:
                    pytest.fail(
                        "the server decided to close a client that does not read (1013) "
                        "but still holds its connection 12 s later: the close handshake "
                        "waits for the client to drain its buffer, which it never will"
                    )
                finally:
                    dropped = time.monotonic() - decided
                    figure("slow.never_reader_dropped_after_s", f"{dropped:.2f}")
                    figure(
                        "slow.never_reader_rss_kib",
                        f"before {rss_before}, now {status_kib(pid, 'VmRSS')}",
                    )
                await still_chatting(sender, f1)
                return rss_before, status_kib(pid, "VmRSS")

    rss_before, rss_after = asyncio.run(scenario())
    assert rss_after - rss_before < 200 * MIB
    assert 1013 in close_codes(server).values()  # what the close chain was told
    assert_clean_log(server)


def test_many_paused_readers_at_once_keep_memory_bounded(server: LoloProcess) -> None:
    """Twenty clients stop reading together: each is cut off at the cap, so the server's
    memory grows by about 20 x 256 KiB, not 20 x 16 MiB."""
    pid = server_pid(server)

    async def scenario() -> tuple[int, int, list[str]]:
        paused = [
            await connect(server.url(), compression=None, ping_interval=None, close_timeout=0.5)
            for _ in range(20)
        ]
        try:
            ids = [
                json.loads(await asyncio.wait_for(ws.recv(), WAIT))["yourConnectionId"]
                for ws in paused
            ]
            async with chatter(server) as sender, chatter(server) as f1:
                rss_before = status_kib(pid, "VmRSS")
                reader = asyncio.create_task(read_all(f1, COUNT))
                await flood(sender, [f1])
                await asyncio.wait_for(reader, 60)
                rss_after = status_kib(pid, "VmRSS")
                await still_chatting(sender, f1)
            return rss_before, rss_after, ids
        finally:
            await asyncio.gather(*(ws.close() for ws in paused))

    rss_before, rss_after, ids = asyncio.run(scenario())
    cut = [session for session in ids if slow_warning(server, session)]
    figure(
        "slow.twenty_paused_rss_kib",
        f"before {rss_before}, after {rss_after}, {len(cut)} of 20 cut off",
    )
    assert len(cut) == 20
    assert rss_after - rss_before < 200 * MIB
    assert alive(server)
    assert_clean_log(server)
