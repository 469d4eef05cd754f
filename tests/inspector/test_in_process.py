"""The inspector in-process: off by default (not even imported, no routes, the engine's
plain methods), and on: routes served, log handler attached, then detached at stop."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from lolo_runtime.loader import load_flow
from lolo_runtime.runtime import Runtime, ServeOptions
from lolo_runtime.state import SQLiteBackend
from tests.support import ROOT

CHAT = ROOT / "flows" / "chat.yaml"
PATHS = ("/_lolo/", "/_lolo/metrics", "/_lolo/page.js")


async def get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 5)
    await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return int(head.split()[1])


async def statuses(runtime: Runtime) -> list[int]:
    await runtime.start()
    try:
        return [await get(runtime.bound_port, path) for path in PATHS]
    finally:
        await runtime.stop()


def test_off_by_default_nothing_is_imported_served_or_swapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in sys.modules if n.startswith("lolo_runtime.inspector")]:
        monkeypatch.delitem(sys.modules, name)
    runtime = Runtime(load_flow(CHAT), ServeOptions(port=0), SQLiteBackend(tmp_path / "s.db"))
    assert runtime.inspector is None
    assert runtime.engine.meter is None
    assert not {"fire", "_call", "_handler_failed"} & set(vars(runtime.engine))
    assert asyncio.run(statuses(runtime)) == [404, 404, 404]
    assert [n for n in sys.modules if n.startswith("lolo_runtime.inspector")] == []


def test_on_it_serves_its_routes_and_detaches_its_log_handler_at_stop(tmp_path: Path) -> None:
    from lolo_runtime.inspector.logtail import LogTail

    options = ServeOptions(port=0, inspect=True)
    runtime = Runtime(load_flow(CHAT), options, SQLiteBackend(tmp_path / "s.db"))
    assert runtime.inspector is not None
    assert runtime.engine.meter is runtime.inspector.meter
    seen: list[bool] = []

    async def scenario() -> list[int]:
        await runtime.start()
        seen.append(any(isinstance(h, LogTail) for h in logging.getLogger().handlers))
        try:
            return [await get(runtime.bound_port, path) for path in PATHS]
        finally:
            await runtime.stop()

    assert asyncio.run(scenario()) == [200, 200, 200]
    assert seen == [True]
    assert not any(isinstance(h, LogTail) for h in logging.getLogger().handlers)
