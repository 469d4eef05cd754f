"""A chain in flight when ``--reload`` swaps a handler in finishes with the old code; chains
started after the swap run the new code; the old node is closed only once its chain is done."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.reload.support import RELOADED, edit, recv, start_reloading, wait_for_log_async

FLOW = """\
app: inflight
nodes:
  - id: ws
    type: lolo/websocket-trigger
    params: {path: /socket}
  - id: relay
    type: lolo/function
    handler: relay.py
    outputs: []
edges:
  - ws.message -> relay.in
"""

RELAY = '''\
"""Answers each message with the version's tag; "slow" waits at the gate first."""

import logging

import gate

VERSION = "v1"


async def handler(ev, ctx):
    message = ev["message"]
    if message == "slow":
        ctx.log.info("waiting at the gate")
        await gate.opened()
    elif message == "open":
        gate.open()
    ctx.emit("response", {"body": f"{VERSION}: {message}"})


def close():
    logging.getLogger("relay").warning("relay %s closed", VERSION)
'''

GATE = '''\
"""A gate that any version of relay.py may open (this module is not edited, so every
version shares it)."""

import asyncio

_gate = None


def _event():
    global _gate
    if _gate is None:
        _gate = asyncio.Event()
    return _gate


async def opened():
    await _event().wait()


def open():
    _event().set()
'''


async def ask(ws: ClientConnection, message: str) -> str | bytes:
    await ws.send(message)
    return await recv(ws)


def test_a_chain_in_flight_finishes_on_the_old_code_and_new_ones_run_the_new(
    tmp_path: Path,
) -> None:
    (tmp_path / "relay.py").write_text(RELAY)
    (tmp_path / "gate.py").write_text(GATE)
    flow = tmp_path / "inflight.yaml"
    flow.write_text(textwrap.dedent(FLOW))
    server = start_reloading(flow, tmp_path / "s.sqlite3")

    async def scenario() -> None:
        url = server.url()
        async with connect(url) as slow_client, connect(url) as other:
            assert await ask(other, "hello") == "v1: hello"
            await slow_client.send("slow")
            await wait_for_log_async(server, "waiting at the gate")
            edit(tmp_path / "relay.py", 'VERSION = "v1"', 'VERSION = "v2"')
            await wait_for_log_async(server, RELOADED)
            assert await ask(other, "hello") == "v2: hello"
            # The old relay node is not closed while its chain still runs.
            assert "relay v1 closed" not in server.stderr()
            assert await ask(other, "open") == "v2: open"
            assert await recv(slow_client) == "v1: slow"  # the old code, to its end
            await wait_for_log_async(server, "relay v1 closed")
            assert await ask(slow_client, "again") == "v2: again"

    try:
        asyncio.run(scenario())
        assert server.stop() == 0
        log = server.stderr()
        assert log.count("relay v1 closed") == 1
        assert log.count("relay v2 closed") == 1  # at shutdown
        assert "Traceback" not in log
    finally:
        server.close()
