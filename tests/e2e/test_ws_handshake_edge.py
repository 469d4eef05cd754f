"""WebSocket handshakes at the edge: what is refused before any app code runs, and how the
held handshake ends (timeout, client gone, refusal) with exactly one ``close`` event.

tests/e2e/flows/edge-ws.yaml: ``/socket`` is the chat (its req chain logs "client has
connected", its close chain "client has disconnected"), ``/strict`` the chat with one
allowed Origin, ``/slow`` a req chain that sleeps ``?ms=`` against ``open_timeout: 0.5``,
``/refuse`` a req chain that raises ``Reject(401)``, ``/method`` answers ``ev["method"]``.
Every close event is logged as ``edge closed path=... code=...`` with its session id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.e2e.test_http_edge import Http, Reply
from tests.support import ROOT, LoloProcess

FLOW = ROOT / "tests" / "e2e" / "flows" / "edge-ws.yaml"
WAIT = 10.0
OPEN_TIMEOUT = 0.5  # /slow


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOW) as process:
        yield process


def handshake(
    path: str = "/socket",
    *,
    method: str = "GET",
    drop: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    body: bytes = b"",
    key: str | None = None,
    version: str | None = "13",
) -> bytes:
    """An upgrade request; ``drop`` leaves out headers by (lower-case) name."""
    fields = {
        "host": "127.0.0.1",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": key or base64.b64encode(os.urandom(16)).decode(),
        "sec-websocket-version": version,
    }
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [
        f"{name}: {value}"
        for name, value in fields.items()
        if name not in drop and value is not None
    ]
    lines += list(extra)
    if body:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def refused(server: LoloProcess, request: bytes) -> Reply:
    """Send ``request``; return the (non-101) answer after checking the server closes."""
    with Http(server.port) as http:
        http.send(request)
        reply = http.reply(to_head=request.startswith(b"HEAD "))
        assert reply.status != 101, reply
        assert http.closed(), "a refused handshake must close the connection"
    return reply


def wait_for(server: LoloProcess, pattern: str, count: int = 1) -> list[str]:
    """Wait until ``pattern`` matches ``count`` times in the server's log; return the
    matches' first groups (or whole matches)."""
    deadline = time.monotonic() + WAIT
    while True:
        found = [
            m.group(1) if m.groups() else m.group(0) for m in re.finditer(pattern, server.stderr())
        ]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{pattern!r} seen {len(found)} times, wanted {count}:\n{server.stderr()}"
            )
        time.sleep(0.02)


def assert_no_chain_ran(server: LoloProcess) -> None:
    """No req or close chain ran for any client so far. A real handshake to /method is the
    control: once its close event is logged, earlier events would have been too."""

    async def control() -> object:
        async with connect(server.url("/method")) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    assert asyncio.run(control()) == {"method": "GET"}
    wait_for(server, r"edge closed path=/method")
    log = server.stderr()
    assert "client has connected" not in log, log
    assert "client has disconnected" not in log, log
    assert len(re.findall(r"edge closed", log)) == 1, log
    assert "Traceback" not in log, log


def close_lines(server: LoloProcess, session: str) -> list[str]:
    return re.findall(rf"session={session}\] edge closed path=\S+ code=(\d+)", server.stderr())


# --- refused before any app code ---------------------------------------------------------


def test_a_get_without_upgrade_is_426(server: LoloProcess) -> None:
    reply = refused(server, b"GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert reply.status == 426
    assert (reply.header("upgrade") or "").lower() == "websocket"
    assert_no_chain_ran(server)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE"])
def test_a_handshake_that_is_not_a_get_is_405_allow_get(server: LoloProcess, method: str) -> None:
    reply = refused(server, handshake(method=method))
    assert reply.status == 405
    assert reply.header("allow") == "GET"
    assert_no_chain_ran(server)


def test_a_post_with_a_json_body_gets_an_http_answer(server: LoloProcess) -> None:
    """Not a dropped connection: 405 with ``Allow: GET``, as for any method the path does
    not serve (also without the upgrade headers, as a confused HTTP client would send)."""
    body = b'{"hello": "socket"}'
    reply = refused(
        server, handshake(method="POST", body=body, extra=("content-type: application/json",))
    )
    assert (reply.status, reply.header("allow")) == (405, "GET")
    plain_post = (
        b"POST /socket HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    reply = refused(server, plain_post)
    assert (reply.status, reply.header("allow")) == (405, "GET")
    assert_no_chain_ran(server)


def test_a_get_with_a_body_is_400(server: LoloProcess) -> None:
    assert refused(server, handshake(body=b"surprise")).status == 400
    assert_no_chain_ran(server)


@pytest.mark.parametrize(
    "key",
    [
        "abc",  # not base64
        base64.b64encode(b"eight by").decode(),  # base64, but not 16 bytes
        "",
    ],
    ids=["not-base64", "wrong-length", "empty"],
)
def test_a_bad_sec_websocket_key_is_400(server: LoloProcess, key: str) -> None:
    request = handshake(key=key) if key else handshake(drop=("sec-websocket-key",))
    assert refused(server, request).status == 400
    assert_no_chain_ran(server)


@pytest.mark.parametrize("version", ["8", "14", "13, 8", None], ids=["8", "14", "list", "missing"])
def test_a_bad_sec_websocket_version_is_426_naming_version_13(
    server: LoloProcess, version: str | None
) -> None:
    """RFC 6455 4.2.2: an error status "such as 426 Upgrade Required" and a
    ``Sec-WebSocket-Version`` header naming the versions the server understands; a 426
    also names the protocol in ``Upgrade`` (RFC 9110 15.5.22)."""
    request = handshake(version=version) if version else handshake(drop=("sec-websocket-version",))
    reply = refused(server, request)
    assert reply.status == 426
    assert reply.header("sec-websocket-version") == "13"
    assert (reply.header("upgrade") or "").lower() == "websocket"
    assert_no_chain_ran(server)


def test_a_foreign_origin_is_403_and_an_allowed_one_opens(server: LoloProcess) -> None:
    reply = refused(server, handshake("/strict", extra=("Origin: https://evil.example",)))
    assert reply.status == 403
    assert refused(server, handshake("/strict")).status == 403  # no Origin at all
    assert_no_chain_ran(server)

    async def allowed() -> object:
        async with connect(server.url("/strict"), origin=Origin("https://chat.example")) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))["connected"]

    assert asyncio.run(allowed()) is True
    wait_for(server, "client has connected")


def test_the_req_chain_sees_the_method_get(server: LoloProcess) -> None:
    async def scenario() -> object:
        async with connect(server.url("/method")) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), WAIT))

    assert asyncio.run(scenario()) == {"method": "GET"}


def test_the_chat_handshake_runs_one_req_and_one_close_chain(server: LoloProcess) -> None:
    """The control for the tests above: a valid handshake does run the chains."""

    async def scenario() -> None:
        async with connect(server.url("/socket")) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["connected"] is True

    asyncio.run(scenario())
    wait_for(server, "client has disconnected")
    assert server.stderr().count("client has connected") == 1


# --- how a held handshake ends -----------------------------------------------------------


def test_a_req_chain_that_outlives_open_timeout_gets_503_and_one_close(server: LoloProcess) -> None:
    async def scenario() -> tuple[int, float]:
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refusal:
            async with connect(server.url("/slow?ms=1200")):
                pass
        return refusal.value.response.status_code, time.monotonic() - started

    status, waited = asyncio.run(scenario())
    assert status == 503
    assert OPEN_TIMEOUT * 0.8 <= waited < OPEN_TIMEOUT + 0.5  # not after the chain
    (session,) = wait_for(server, r"session=([0-9a-f-]{36})\] slow req started")
    wait_for(server, rf"session={session}\] edge closed")
    time.sleep(0.3)
    assert close_lines(server, session) == ["1006"]
    assert "slow req finished" in server.stderr()  # the chain was let finish


@pytest.mark.parametrize("ms", [400, 1200], ids=["within-open-timeout", "past-it"])
def test_a_client_that_leaves_during_a_slow_req_chain_gets_one_close(
    server: LoloProcess, ms: int
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(handshake(f"/slow?ms={ms}"))
        wait_for(server, "slow req started")
        # Leaves while the req chain sleeps.
    (session,) = wait_for(server, r"session=([0-9a-f-]{36})\] slow req started")
    wait_for(server, rf"session={session}\] edge closed")
    time.sleep(0.3)
    assert close_lines(server, session) == ["1006"]
    assert "Traceback" not in server.stderr()


def test_a_refused_handshake_gets_one_close(server: LoloProcess) -> None:
    async def scenario() -> tuple[int, bytes]:
        with pytest.raises(InvalidStatus) as refusal:
            async with connect(server.url("/refuse")):
                pass
        return refusal.value.response.status_code, bytes(refusal.value.response.body)

    assert asyncio.run(scenario()) == (401, b"no key, no entry")
    (session,) = wait_for(server, r"session=([0-9a-f-]{36})\] refusing with 401")
    wait_for(server, rf"session={session}\] edge closed")
    time.sleep(0.3)
    assert close_lines(server, session) == ["1006"]


def test_failed_handshakes_leave_nothing_behind_in_the_chat(server: LoloProcess) -> None:
    """/slow puts each client in the chat's table of connections after its sleep, timed out
    or not; its close chain takes it out again. After handshakes that timed out, were
    abandoned or refused, the table is back to the live clients: every "connected" has its
    "disconnected", and a broadcast reaches just the clients that are there."""

    async def fail_some() -> None:
        for path in ("/slow?ms=700", "/slow?ms=700", "/refuse"):
            with pytest.raises(InvalidStatus):
                async with connect(server.url(path)):
                    pass

    async def chat() -> None:
        async with connect(server.url()) as a, connect(server.url()) as b:
            hello_a = json.loads(await asyncio.wait_for(a.recv(), WAIT))
            await asyncio.wait_for(b.recv(), WAIT)
            await a.send("hi")
            assert (
                await asyncio.wait_for(b.recv(), WAIT) == f"{hello_a['yourConnectionId']} says: hi"
            )

    asyncio.run(fail_some())
    for _ in range(2):  # abandoned while the req chain sleeps
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(handshake("/slow?ms=300"))
            time.sleep(0.1)
    wait_for(server, r"edge closed path=/slow", count=4)
    asyncio.run(chat())
    wait_for(server, r"path=/socket code=1000", count=2)
    time.sleep(0.3)
    log = server.stderr()
    assert len(re.findall(r"edge closed", log)) == 7, log  # 4 /slow, 1 /refuse, 2 /socket
    assert log.count("client has connected") == log.count("client has disconnected") == 6
    assert "Traceback" not in log, log
