"""A broken edit under ``--reload`` is reported as ``path:line: message`` and the running
version goes on; the next good save is swapped in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reload.support import (
    FAILED,
    RELOADED,
    chat_client,
    copy_chat,
    edit,
    line_of,
    recv_text,
    save,
    start_reloading,
    wait_for_log,
    wait_for_log_async,
)
from tests.support import LoloProcess

SAYS = "text = f\"{name} says: {ev['message']}\""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[LoloProcess, Path]]:
    flow = copy_chat(tmp_path)
    server = start_reloading(flow, tmp_path / "s.sqlite3")
    try:
        yield server, flow
    finally:
        server.close()


def bare_lines(server: LoloProcess, prefix: str) -> list[str]:
    """stderr lines that are just ``path:line: message``, as ``lolo-run check`` prints them."""
    return [line for line in server.stderr().splitlines() if line.startswith(prefix)]


def test_a_handler_that_does_not_import_keeps_the_running_version(
    app: tuple[LoloProcess, Path],
) -> None:
    server, flow = app
    handler = flow.parent.parent / "nodes" / "handle_messages.py"
    good = handler.read_text()
    where = f"{flow}:{line_of(flow, 'handler: ../nodes/handle_messages.py')}: "

    async def scenario() -> None:
        async with chat_client(server) as (a, a_id), chat_client(server) as (b, b_id):
            save(
                handler,
                good.replace(
                    "async def handler(ev: dict[str, Any], ctx: Any) -> None:",
                    "async def handler(ev, ctx)",
                ),
            )
            await wait_for_log_async(server, FAILED)
            await a.send("still there?")
            assert await recv_text(b) == f"{a_id} says: still there?"
            save(handler, good.replace(SAYS, "text = f\"{name}> {ev['message']}\""))
            await wait_for_log_async(server, RELOADED)
            await b.send("fixed")
            assert await recv_text(a) == f"{b_id}> fixed"

    asyncio.run(scenario())
    errors = bare_lines(server, where)
    assert len(errors) == 1, server.stderr()
    assert "node 'handle-messages': handler file ../nodes/handle_messages.py does not " in errors[0]
    assert "SyntaxError" in errors[0]
    logged = [line for line in server.stderr().splitlines() if " ERROR " in line]
    assert len(logged) == 1 and where in logged[0]


def test_flow_errors_and_changes_that_need_a_restart_keep_the_running_version(
    app: tuple[LoloProcess, Path],
) -> None:
    server, flow = app
    good = flow.read_text()
    edge_line = line_of(flow, "- process-request.msg -> handle-messages.in")

    async def scenario() -> None:
        async with chat_client(server) as (a, a_id), chat_client(server) as (b, _):
            # An edge to a node that is not there.
            edit(
                flow,
                "process-request.msg -> handle-messages.in",
                "process-request.msg -> nowhere.in",
            )
            await wait_for_log_async(server, FAILED, count=1)
            await a.send("one")
            assert await recv_text(b) == f"{a_id} says: one"
            # A new app name: the flow loads, but it needs a restart.
            save(flow, good.replace("app: chat", "app: chatter"))
            await wait_for_log_async(server, FAILED, count=2)
            await a.send("two")
            assert await recv_text(b) == f"{a_id} says: two"
            # Saved back as it runs: nothing to reload, and the app says so.
            save(flow, good)
            await wait_for_log_async(server, "back to the running version")
            await a.send("three")
            assert await recv_text(b) == f"{a_id} says: three"

    asyncio.run(scenario())
    assert bare_lines(
        server,
        f"{flow}:{edge_line}: edge 'process-request.msg -> nowhere.in': unknown node 'nowhere'",
    )
    renamed = bare_lines(
        server, f"{flow}:{line_of(flow, 'app: chat')}: app: 'chat' became 'chatter'"
    )
    assert len(renamed) == 1 and "restart lolo-run" in renamed[0]
    assert RELOADED not in server.stderr()
    assert server.stop() == 0


def test_a_node_whose_setup_fails_keeps_the_running_version(
    app: tuple[LoloProcess, Path],
) -> None:
    server, flow = app
    handler = flow.parent.parent / "nodes" / "handle_messages.py"
    good = handler.read_text()
    where = f"{flow}:{line_of(flow, 'id: handle-messages')}: node 'handle-messages': setup failed"

    async def scenario() -> None:
        async with chat_client(server) as (a, a_id), chat_client(server) as (b, _):
            save(
                handler,
                good.replace(
                    "    await history.load(ctx)",
                    "    raise OSError('no history today')",
                ).replace(SAYS, "text = f\"{name} (new): {ev['message']}\""),
            )
            await wait_for_log_async(server, FAILED)
            await a.send("old code")
            assert await recv_text(b) == f"{a_id} says: old code"

    asyncio.run(scenario())
    errors = bare_lines(server, where)
    assert len(errors) == 1 and "OSError: no history today" in errors[0]
    wait_for_log(server, "client has disconnected", count=2)
