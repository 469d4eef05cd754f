"""The WebSocket trigger holds the handshake until its ``req`` chain finishes or fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from lolo_runtime.state import SQLiteBackend
from tests.support import ROOT, LoloProcess

FLOW = ROOT / "tests" / "e2e" / "flows" / "gatekeeper.yaml"


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOW) as process:
        yield process


async def refusal(url: str) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    response = refused.value.response
    return response.status_code, bytes(response.body)


@pytest.mark.parametrize(
    ("door", "status", "body"),
    [
        ("reject", 403, b"not this door"),
        ("answer", 429, b"come back later"),
        ("crash", 500, b"Internal Server Error\n"),
    ],
)
def test_a_req_chain_that_refuses_or_fails_answers_with_its_status(
    server: LoloProcess, door: str, status: int, body: bytes
) -> None:
    assert asyncio.run(refusal(server.url() + f"?door={door}")) == (status, body)


def test_a_req_chain_that_finishes_opens_the_socket_and_sends_what_it_emitted(
    server: LoloProcess,
) -> None:
    async def scenario() -> object:
        async with connect(server.url() + "?door=front") as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    assert asyncio.run(scenario()) == {"welcome": "front"}


def test_nothing_after_a_refusing_node_runs(server: LoloProcess) -> None:
    async def scenario() -> None:
        for door in ("reject", "answer", "crash"):
            await refusal(server.url() + f"?door={door}")
        async with connect(server.url() + "?door=front") as ws:
            await ws.recv()

    asyncio.run(scenario())
    assert server.stop() == 0

    async def greeted() -> object:
        async with SQLiteBackend(server.state) as backend:
            return await backend.for_app("gatekeeper").get("greeted")

    assert asyncio.run(greeted()) == 1
    log = server.stderr()
    assert "RuntimeError: gatekeeper bug" in log
    assert "chain stopped: 403 not this door" in log
