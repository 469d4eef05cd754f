"""The chat keeps its last 20 messages in ctx.state and greets newcomers with them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.support import ROOT, LoloProcess

CHAT = ROOT / "flows" / "chat.yaml"


async def newcomer_sees(server: LoloProcess) -> list[Any]:
    """Connect, and return the frames that follow the connect message (history, if any)."""
    async with connect(server.url()) as ws:
        assert json.loads(await ws.recv())["connected"] is True
        try:
            return [json.loads(await asyncio.wait_for(ws.recv(), 0.5))]
        except TimeoutError:
            return []


async def talk(server: LoloProcess, count: int) -> str:
    async with connect(server.url()) as a, connect(server.url()) as b:
        sender = json.loads(await a.recv())["yourConnectionId"]
        await b.recv()
        for i in range(count):
            await a.send(f"m{i}")
        for _ in range(count):
            await asyncio.wait_for(b.recv(), 5)
        return str(sender)


def test_newcomers_get_the_last_20_messages_and_they_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    with LoloProcess(CHAT, state=state) as server:
        assert asyncio.run(newcomer_sees(server)) == []  # nothing said yet: nothing sent
        sender = asyncio.run(talk(server, 25))
        assert server.stop() == 0

    with LoloProcess(CHAT, state=state) as restarted:
        [frame] = asyncio.run(newcomer_sees(restarted))
    entries = frame["history"]
    assert [entry["message"] for entry in entries] == [f"m{i}" for i in range(5, 25)]
    assert {entry["from"] for entry in entries} == {sender}
    assert [entry["n"] for entry in entries] == list(range(6, 26))
