"""``--reload`` and ``--inspect`` together: the inspector follows a swap at once, and the
counts of the nodes that stay go on from where they were."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.inspector.live_support import metrics, wait_for
from tests.reload.support import (
    RELOADED,
    WATCHING,
    chat_client,
    copy_chat,
    edit,
    recv_text,
    wait_for_log,
    wait_for_log_async,
)
from tests.support import LoloProcess

SAYS = "text = f\"{name} says: {ev['message']}\""
WRITES = "text = f\"{name} writes: {ev['message']}\""
LOGGER = """\
  - id: logger
    name: Log Messages
    type: lolo/function
    handler: ../nodes/hello.py
    outputs: []
"""


def test_the_inspector_follows_a_reload_and_keeps_the_counts(tmp_path: Path) -> None:
    flow = copy_chat(tmp_path)
    with LoloProcess(flow, "--reload", "--inspect", state=tmp_path / "s.sqlite3") as server:
        wait_for_log(server, WATCHING)

        def calls(node: str) -> float:
            return metrics(server).value("lolo_node_calls_total", app="chat", node=node)

        async def scenario() -> None:
            async with chat_client(server) as (a, a_id), chat_client(server) as (b, _):
                for n in range(3):
                    await a.send(f"m{n}")
                    assert await recv_text(b) == f"{a_id} says: m{n}"
                wait_for(lambda: calls("handle-messages") == 3, "3 calls before the edit")
                edit(tmp_path / "nodes" / "handle_messages.py", SAYS, WRITES)
                await wait_for_log_async(server, RELOADED)
                for n in range(2):
                    await a.send(f"n{n}")
                    assert await recv_text(b) == f"{a_id} writes: n{n}"
                # The handler was swapped; its node id stayed, and so did its count.
                wait_for(lambda: calls("handle-messages") == 5, "5 calls after the edit")
                sessions = metrics(server).value("lolo_sessions_open", app="chat", trigger="ws")
                assert sessions == 2  # the kept trigger's clients, still there

        asyncio.run(scenario())
        # A node added by a reload shows up in the figures at once, with no calls yet.
        text = flow.read_text()
        flow.write_text(text.replace("\nedges:\n", "\n" + LOGGER + "\nedges:\n", 1))
        wait_for_log(server, RELOADED, count=2)
        wait_for(
            lambda: any(
                dict(labels).get("node") == "logger"
                for labels in metrics(server).series("lolo_node_calls_total")
            ),
            "the added node in /_lolo/metrics",
        )
        assert calls("logger") == 0
        assert calls("handle-messages") == 5
