"""Signals: SIGHUP shuts down gracefully like SIGTERM; a second signal stops at once."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lolo_runtime.state import SQLiteBackend
from tests.support import ROOT, LoloProcess

CHAT = ROOT / "flows" / "chat.yaml"
SLEEPY = ROOT / "tests" / "e2e" / "flows" / "sleepy.yaml"


def wait_for_line(server: LoloProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.stderr():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{server.stderr()}"
        time.sleep(0.02)


def test_sighup_shuts_down_gracefully_with_1001_for_clients() -> None:
    with LoloProcess(CHAT) as server:

        async def scenario() -> int | None:
            async with connect(server.url()) as ws:
                await asyncio.wait_for(ws.recv(), 5)  # the greeting
                server.send_signal(signal.SIGHUP)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                return closed.value.rcvd.code if closed.value.rcvd else None

        assert asyncio.run(scenario()) == 1001
        assert server.wait() == 0
        assert "SIGHUP: shutting down" in server.stderr()
        assert "Traceback" not in server.stderr()


def test_a_second_signal_stops_at_once_with_status_3_and_a_clean_store() -> None:
    with LoloProcess(SLEEPY, "--shutdown-timeout", "30") as server:

        async def scenario() -> float:
            async with connect(server.url(), close_timeout=0.1) as ws:
                await ws.send("60")  # a handler that would hold shutdown for 30 s
                await asyncio.to_thread(wait_for_line, server, "sleeping")
                server.send_signal(signal.SIGTERM)
                await asyncio.to_thread(wait_for_line, server, "shutting down")
                started = time.monotonic()
                server.send_signal(signal.SIGINT)
                status = await asyncio.to_thread(server.wait, 10)
                assert status == 3, server.stderr()
                return time.monotonic() - started

        took = asyncio.run(scenario())
        log = server.stderr()
        assert took < 5, f"the second signal took {took:.1f}s to stop the process"
        assert "stopped at once by a second signal" in log
        assert "Traceback" not in log
        assert "woke up" not in log
        state = server.state
        leftovers = [p.name for p in state.parent.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert leftovers == [], leftovers

        async def stored() -> object:  # the write acknowledged before the signals is kept
            async with SQLiteBackend(state) as backend:
                return await backend.for_app("sleepy").get("last")

        assert asyncio.run(stored()) == "60"
