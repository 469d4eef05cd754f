"""Item 3: a peer that stops answering is closed by keepalive; a TCP connection that never
completes the WebSocket upgrade is dropped after ``open_timeout``.

flows/keepalive.yaml sets ``ping_interval`` and ``ping_timeout`` to 0.5 s (so a dead peer
must be noticed within about 1 s) and ``open_timeout`` to 0.5 s. The tests wait up to 10 s
before failing, and record the time actually taken.
"""

from __future__ import annotations

import asyncio
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.hardening.wire import (
    FLOWS,
    WAIT,
    RawClient,
    alive,
    assert_clean_log,
    chatter,
    close_codes,
    figure,
    still_chatting,
    tcp_state,
    wait_until,
)
from tests.support import LoloProcess

BOUND = 0.5 + 0.5  # ping_interval + ping_timeout in flows/keepalive.yaml
OPEN_TIMEOUT = 0.5

CLIENT = r"""
import asyncio, json, sys
from websockets.asyncio.client import connect

async def main(url):
    # No keepalive of its own: the server's pings are what is under test.
    async with connect(url, compression=None, ping_interval=None) as ws:
        hello = json.loads(await ws.recv())
        port = ws.local_address[1]
        print(hello["yourConnectionId"], port, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOWS / "keepalive.yaml") as process:
        yield process


class ClientProcess:
    """A WebSocket chat client in a process of its own, so it can be frozen with SIGSTOP."""

    def __init__(self, url: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def connected(self) -> tuple[str, int]:
        """Wait for the client to connect; return its session id and local port."""
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            assert selector.select(WAIT), "the client process did not connect"
        session_id, port = self.proc.stdout.readline().decode().split()
        return session_id, int(port)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def client_process(server: LoloProcess) -> Iterator[ClientProcess]:
    process = ClientProcess(server.url())
    try:
        yield process
    finally:
        process.close()


def test_a_frozen_client_is_closed_within_ping_interval_plus_timeout(
    server: LoloProcess, client_process: ClientProcess
) -> None:
    """SIGSTOP freezes the client: its kernel still acknowledges TCP, but nothing answers
    pings. Two moments are measured from the SIGSTOP: when the server gives up on the peer
    (its socket leaves ESTABLISHED: close frame and FIN sent), and when the runtime lets the
    connection go (the ``close`` chain runs, handlers forget the client). Both must come
    within a few times ping_interval + ping_timeout (5 s are allowed for a 1 s bound)."""
    frozen_id, frozen_port = client_process.connected()

    async def scenario() -> tuple[float, float]:
        async with chatter(server) as a, chatter(server) as b:
            # Silent but answering pings (its library does): an idle client that is alive
            # stays connected through several ping intervals.
            await asyncio.sleep(3 * BOUND)
            assert frozen_id not in close_codes(server), server.stderr()
            assert tcp_state(server.port, frozen_port) == "ESTABLISHED"
            client_process.proc.send_signal(signal.SIGSTOP)
            start = time.monotonic()
            await wait_until(
                lambda: tcp_state(server.port, frozen_port) != "ESTABLISHED",
                "the server to give up on the frozen client",
                5 * BOUND,
            )
            gave_up = time.monotonic() - start
            await still_chatting(a, b)
            try:
                await wait_until(
                    lambda: frozen_id in close_codes(server),
                    "the close chain of the frozen client",
                    5 * BOUND - gave_up,
                )
            except AssertionError:
                pytest.fail(
                    f"the server gave up on the frozen peer {gave_up:.1f} s after SIGSTOP, but "
                    f"its close chain had not run {5 * BOUND:.0f} s after: the runtime waits "
                    "for a dead peer to answer the closing handshake (the websockets "
                    "library's close timeout, 10 s by default)"
                )
            return gave_up, time.monotonic() - start

    gave_up, let_go = asyncio.run(scenario())
    figure("keepalive.frozen_client_given_up_after_s", f"{gave_up:.2f} (bound {BOUND:.1f})")
    figure("keepalive.frozen_client_close_chain_after_s", f"{let_go:.2f} (bound {BOUND:.1f})")
    assert f"session={frozen_id}] client has disconnected" in server.stderr()
    assert alive(server)
    assert_clean_log(server)


OPENINGS = {
    "sends-nothing": b"",
    "half-a-request": b"GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    "tls-hello-on-plain": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


@pytest.mark.parametrize("opening", list(OPENINGS))
def test_a_connection_that_never_upgrades_is_dropped_after_open_timeout(
    server: LoloProcess, opening: str
) -> None:
    with RawClient(server.port) as raw:
        raw.send(OPENINGS[opening])
        took = raw.wait_closed()
    figure(f"open_timeout.{opening}.dropped_after_s", f"{took:.2f} (open_timeout {OPEN_TIMEOUT})")
    assert alive(server)
    assert_clean_log(server)


def test_a_trickling_handshake_is_dropped_after_open_timeout(server: LoloProcess) -> None:
    """A slowloris: one byte of the request every 100 ms. The timeout covers the whole
    handshake, so trickling does not keep the connection alive."""
    request = b"GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" * 4
    with RawClient(server.port) as raw:
        start = time.monotonic()
        try:
            for byte in request:
                raw.send(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass  # the server closed while we were still trickling: what we want
        took = time.monotonic() - start + raw.wait_closed()
    figure("open_timeout.trickle_dropped_after_s", f"{took:.2f}")
    assert took < len(request) * 0.1  # dropped long before the request could end
    assert alive(server)


def test_many_idle_connections_are_all_dropped_and_chat_goes_on(server: LoloProcess) -> None:
    async def scenario() -> None:
        async with chatter(server) as a, chatter(server) as b:
            raws = [RawClient(server.port) for _ in range(100)]
            try:
                took = await asyncio.gather(*(asyncio.to_thread(r.wait_closed) for r in raws))
            finally:
                for raw in raws:
                    raw.close()
            figure("open_timeout.hundred_idle_dropped_within_s", f"{max(took):.2f}")
            await still_chatting(a, b)

    asyncio.run(scenario())
    assert alive(server)
    assert_clean_log(server)
