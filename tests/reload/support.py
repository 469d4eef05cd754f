"""What the ``--reload`` tests share: a copy of an app to edit, a real ``lolo-run --reload``
on it, and waiting for its log lines."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.support import ROOT, LoloProcess

WATCHING = "--reload: watching"
RELOADED = "reloaded "
FAILED = "failed; the running version is kept"


def copy_chat(folder: Path) -> Path:
    """flows/chat.yaml, its page and its handler modules, laid out as in the repository
    (``flows/`` beside ``nodes/``) under ``folder``; returns the copied flow file."""
    (folder / "nodes").mkdir()
    (folder / "flows").mkdir()
    shutil.copytree(ROOT / "flows" / "public", folder / "flows" / "public")
    for name in ("process_request", "affirm_connection", "handle_messages", "history", "hello"):
        shutil.copy(ROOT / "nodes" / f"{name}.py", folder / "nodes" / f"{name}.py")
    flow = folder / "flows" / "chat.yaml"
    shutil.copy(ROOT / "flows" / "chat.yaml", flow)
    return flow


def save(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` the way editors save: a new file renamed over the old,
    so the watcher never sees a half-written file."""
    spare = path.with_name(path.name + ".saving")
    spare.write_text(text)
    os.replace(spare, path)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    save(path, text.replace(old, new, 1))


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` holding ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def wait_for_log(server: LoloProcess, text: str, count: int = 1, timeout: float = 15.0) -> str:
    """Wait until ``text`` appears ``count`` times on the server's stderr; return the
    line of its last appearance."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.stderr().splitlines() if text in line]
        if len(lines) >= count:
            return lines[count - 1]
        assert time.monotonic() < deadline, (
            f"{text!r} seen {len(lines)} times, not {count}:\n{server.stderr()}"
        )
        time.sleep(0.05)


async def wait_for_log_async(
    server: LoloProcess, text: str, count: int = 1, timeout: float = 15.0
) -> str:
    return await asyncio.to_thread(wait_for_log, server, text, count, timeout)


def start_reloading(flow: Path, state: Path) -> LoloProcess:
    """``lolo-run FLOW --reload``, once its watcher is watching."""
    server = LoloProcess(flow, "--reload", state=state).start()
    try:
        wait_for_log(server, WATCHING)
    except BaseException:
        server.close()
        raise
    return server


@asynccontextmanager
async def chat_client(
    server: LoloProcess, path: str = "/socket"
) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A connected chat client and its session id (its history message, if any, read)."""
    async with connect(server.url(path), compression=None) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["connected"] is True
        yield ws, hello["yourConnectionId"]


async def recv(ws: ClientConnection, timeout: float = 5.0) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_text(ws: ClientConnection) -> str:
    """The next message that is not the history a newcomer is sent."""
    while True:
        message = await recv(ws)
        assert isinstance(message, str)
        if not message.startswith('{"history"'):
            return message
