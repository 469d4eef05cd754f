"""``lolo-run --reload`` on a copy of the tutorial's chat: a real process, real clients,
handler modules edited while they chat."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reload.support import (
    RELOADED,
    chat_client,
    copy_chat,
    edit,
    recv,
    recv_text,
    start_reloading,
    wait_for_log,
    wait_for_log_async,
)
from tests.support import LoloProcess

SAYS = "text = f\"{name} says: {ev['message']}\""
WRITES = "text = f\"{name} writes: {ev['message']}\""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[LoloProcess, Path]]:
    flow = copy_chat(tmp_path)
    server = start_reloading(flow, tmp_path / "s.sqlite3")
    try:
        yield server, tmp_path
    finally:
        server.close()


def test_an_edited_handler_is_swapped_in_while_two_clients_chat_on(
    app: tuple[LoloProcess, Path],
) -> None:
    server, folder = app

    async def scenario() -> str:
        async with chat_client(server) as (a, a_id), chat_client(server) as (b, b_id):
            await a.send("hi")
            assert await recv_text(b) == f"{a_id} says: hi"
            edit(folder / "nodes" / "handle_messages.py", SAYS, WRITES)
            reloaded = await wait_for_log_async(server, RELOADED)
            # Both still connected, both served by the new handler, through the
            # connections table that process_request.py (not edited) kept.
            await a.send("again")
            assert await recv_text(b) == f"{a_id} writes: again"
            await b.send("back")
            assert await recv_text(a) == f"{b_id} writes: back"
            # A newcomer gets the history kept by history.py (not edited, kept as well).
            async with chat_client(server) as (c, c_id):
                history = json.loads(await recv(c))["history"]
                assert [entry["message"] for entry in history] == ["hi", "again", "back"]
                await c.send("new here")
                assert await recv_text(a) == f"{c_id} writes: new here"
                assert await recv_text(b) == f"{c_id} writes: new here"
            return reloaded

    reloaded = asyncio.run(scenario())
    flow = folder / "flows" / "chat.yaml"
    assert reloaded.endswith(
        f"reloaded {flow}: 1 module re-imported (handle_messages.py), "
        "0 triggers restarted, 2 sessions kept"
    )
    assert server.stop() == 0
    log = server.stderr()
    fresh = [line for line in log.splitlines() if "imported afresh" in line]
    assert len(fresh) == 1
    assert " WARNING " in fresh[0] and "handle_messages.py" in fresh[0]
    assert "Traceback" not in log and " ERROR " not in log


def test_editing_the_module_that_holds_the_connections_table_starts_it_afresh(
    app: tuple[LoloProcess, Path],
) -> None:
    """Documented: a re-imported module's variables start over. The tutorial's
    ``connections`` table is empty after process_request.py is edited, so clients connected
    before are still connected and may speak, but are no longer spoken to."""
    server, folder = app

    async def scenario() -> None:
        async with chat_client(server) as (a, a_id):
            edit(
                folder / "nodes" / "process_request.py",
                'ctx.log.info("client has disconnected")',
                'ctx.log.info("client has left")',
            )
            await wait_for_log_async(server, RELOADED)
            async with chat_client(server) as (c, _), chat_client(server) as (d, d_id):
                await d.send("x")
                assert await recv_text(c) == f"{d_id} says: x"
                with pytest.raises(TimeoutError):  # A is not in the new table
                    await asyncio.wait_for(a.recv(), 1.0)
                await a.send("y")  # but A's connection works, on the new version
                assert await recv_text(c) == f"{a_id} says: y"
                assert await recv_text(d) == f"{a_id} says: y"

    asyncio.run(scenario())
    wait_for_log(server, "client has left", count=3)  # all three, through the edited handler
    assert "process_request.py was imported afresh" in server.stderr()
