"""``lolo/broadcast`` in a real ``lolo-run`` (one process, no Redis), real clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from lolo_runtime.errors import FlowErrors
from lolo_runtime.loader import load_flow
from tests.support import ROOT, LoloProcess

FLOW = ROOT / "tests" / "e2e" / "flows" / "broadcast-probe.yaml"


@pytest.fixture(scope="module")
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOW) as process:
        yield process


@asynccontextmanager
async def clients(
    server: LoloProcess, count: int
) -> AsyncIterator[list[tuple[ClientConnection, str]]]:
    async with AsyncExitStack() as stack:
        joined = []
        for _ in range(count):
            ws = await stack.enter_async_context(connect(server.url(), compression=None))
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert hello["connected"] is True
            joined.append((ws, str(hello["id"])))
        yield joined


async def recv(ws: ClientConnection, timeout: float = 5) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def ack(ws: ClientConnection) -> dict[str, Any]:
    frame = await recv(ws)
    assert isinstance(frame, str), frame
    answer: dict[str, Any] = json.loads(frame)
    assert "after" in answer, answer
    return answer


async def nothing_more(ws: ClientConnection, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        frame = await asyncio.wait_for(ws.recv(), wait)
        pytest.fail(f"unexpected frame {frame!r}")


def test_the_body_reaches_every_member_but_the_sender(server: LoloProcess) -> None:
    async def scenario() -> None:
        async with clients(server, 3) as [(a, _), (b, _), (c, _)]:
            await a.send("hi all")
            assert await recv(b) == "hi all"
            assert await recv(c) == "hi all"
            # The sender's next frame is the acknowledgement from `after`, which runs
            # after the broadcast: had the sender been sent its body, it would come first.
            assert (await ack(a))["after"] == "hi all"
            await nothing_more(a)
            await nothing_more(b)
            await nothing_more(c)

    asyncio.run(scenario())


def test_include_sender_sends_it_to_the_sender_too(server: LoloProcess) -> None:
    async def scenario() -> None:
        async with clients(server, 2) as [(a, _), (b, _)]:
            await a.send("loud:everyone")
            assert await recv(a) == "everyone"
            assert (await ack(a))["after"] == "everyone"
            assert await recv(b) == "everyone"
            await nothing_more(a)
            await nothing_more(b)

    asyncio.run(scenario())


def test_json_and_binary_bodies_keep_their_kind(server: LoloProcess) -> None:
    async def scenario() -> None:
        async with clients(server, 2) as [(a, a_id), (b, _)]:
            await a.send("json")
            assert json.loads(await recv(b)) == {"json": True, "from": a_id}
            await a.send(b"\x00\x01\xff")
            assert await recv(b) == b"\x00\x01\xff"  # a binary frame: bytes
            await ack(a)
            await ack(a)

    asyncio.run(scenario())


def test_the_event_goes_on_out_of_out_unchanged(server: LoloProcess) -> None:
    async def scenario() -> dict[str, Any]:
        async with clients(server, 2) as [(a, _), (b, _)]:
            await a.send("keep me")
            assert await recv(b) == "keep me"
            return await ack(a)

    answer = asyncio.run(scenario())
    assert answer["after"] == "keep me"
    assert answer["message"] == "keep me"
    # The trigger's fields and the body the probe added: nothing dropped, nothing added.
    assert answer["fields"] == sorted(
        [
            "body",
            "headers",
            "message",
            "method",
            "params",
            "path",
            "peer",
            "query",
            "scheme",
            "sessionId",
        ]
    )


def test_per_sender_order_is_kept_for_many_messages(server: LoloProcess) -> None:
    count = 300

    async def scenario() -> list[str | bytes]:
        async with clients(server, 2) as [(a, _), (b, _)]:
            for i in range(count):
                await a.send(f"m{i}")
            got = [await recv(b) for _ in range(count)]
            acks = [(await ack(a))["after"] for _ in range(count)]
            assert acks == [f"m{i}" for i in range(count)]
            return got

    assert asyncio.run(scenario()) == [f"m{i}" for i in range(count)]


def test_an_event_without_a_body_is_an_error_logged_with_the_node_id(
    server: LoloProcess,
) -> None:
    async def scenario() -> str:
        async with clients(server, 2) as [(a, a_id), (b, _)]:
            await a.send("bare")
            await nothing_more(b)
            await nothing_more(a)  # the chain stopped at the broadcast: no `after`
            # The sender's connection lives on and the node still works.
            await a.send("after the error")
            assert await recv(b) == "after the error"
            assert (await ack(a))["after"] == "after the error"
            return a_id

    a_id = asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while True:
        errors = [
            line
            for line in server.stderr().splitlines()
            if " ERROR " in line and f"session={a_id}" in line
        ]
        if errors or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(errors) == 1, server.stderr()
    assert f"[broadcast-probe/quiet session={a_id}]" in errors[0]
    assert "the event has no 'body' to broadcast" in errors[0]
    assert "message" in errors[0]  # the fields it did have are listed


def test_members_who_left_get_nothing(server: LoloProcess) -> None:
    async def scenario() -> None:
        async with clients(server, 2) as [(a, _), (b, _)]:
            async with clients(server, 1) as [(gone, _)]:
                await a.send("while here")
                assert await recv(gone) == "while here"
                assert await recv(b) == "while here"
            await a.send("after leaving")
            assert await recv(b) == "after leaving"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ("{}", "channel"),
        ("{channel: ''}", "channel"),
        ("{channel: room, include_sender: maybe}", "include_sender"),
        ("{channel: room, shout: true}", "shout"),
    ],
)
def test_bad_params_are_flow_errors(tmp_path: Path, params: str, complaint: str) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "app: bad\nnodes:\n"
        "  - id: ws\n    type: lolo/websocket-trigger\n    params: {path: /socket}\n"
        f"  - id: b\n    type: lolo/broadcast\n    params: {params}\n"
        "edges:\n  - ws.message -> b.in\n"
    )
    with pytest.raises(FlowErrors) as caught:
        load_flow(flow)
    assert complaint in str(caught.value)
    assert "flow.yaml:8" in str(caught.value)
