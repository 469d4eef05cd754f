"""lolo_runtime.testing, used the way a user would test a flow of their own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lolo_runtime.errors import FlowErrors
from lolo_runtime.testing import run_flow

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "flows" / "chat.yaml"
HELLO = ROOT / "flows" / "hello-api.yaml"


def test_two_clients_chat_through_a_flow_run_in_process(lolo_state: Path) -> None:
    async def main() -> None:
        async with run_flow(CHAT, state=lolo_state) as app:
            ann = await app.websocket("/socket")
            bob = await app.websocket("/socket")
            ann_id = json.loads(await ann.recv())["yourConnectionId"]
            await bob.recv()
            await ann.send("hi")
            assert await bob.recv() == f"{ann_id} says: hi"
            await ann.close()
            await bob.close()

    asyncio.run(main())


def test_handler_modules_start_afresh_for_each_run(lolo_state: Path) -> None:
    async def one_run() -> int:
        async with run_flow(CHAT, state=lolo_state) as app:
            table = app.flow.nodes["process-request"].module.connections  # type: ignore[attr-defined]
            before = len(table)
            ws = await app.websocket("/socket")
            await ws.recv()
            assert len(table) == 1
            # The connection is left open: the app's stop closes it.
            return before

    assert asyncio.run(one_run()) == 0
    assert asyncio.run(one_run()) == 0  # not the first run's client, still in the table


def test_seeded_state_is_there_before_setup_and_writes_can_be_read(lolo_state: Path) -> None:
    # An old store kept the history as one set() value: the chat converts it to a list.
    past = [{"n": 7, "from": "someone", "message": "from before"}]

    async def main() -> list[object]:
        async with run_flow(CHAT, state=lolo_state, seed={"history": past}) as app:
            ws = await app.websocket("/socket")
            await ws.recv()
            assert json.loads(await ws.recv()) == {"history": past}
            other = await app.websocket("/socket")
            await other.recv()
            await other.recv()
            await ws.send("new one")
            await other.recv()
            # The history is written behind the chat, and converted from the old form
            # (delete, then push): wait until both entries are in.
            stored: list[object] = []
            for _ in range(250):
                stored = await app.state.get("history") or []
                if len(stored) == 2:
                    break
                await asyncio.sleep(0.02)
            return stored

    stored = asyncio.run(main())
    assert [entry["message"] for entry in stored] == ["from before", "new one"]  # type: ignore[index]


def test_http_requests_by_path(lolo_state: Path) -> None:
    async def main() -> None:
        async with run_flow(HELLO, state=lolo_state) as app:
            answer = await app.http("GET", "/hello/ada")
            assert answer.status == 200
            assert answer.json() == {"hello": "ada"}
            missing = await app.http("GET", "/nowhere")
            assert missing.status == 404
            refused = await app.http("POST", "/notes", {"text": "buy milk"})
            assert refused.status == 401  # behind lolo/api-auth

    asyncio.run(main())


def test_one_node_at_a_time_with_inject(lolo_state: Path) -> None:
    async def main() -> None:
        async with run_flow(HELLO, state=lolo_state) as app:
            said = await app.inject("say-hello", {"params": {"name": "ada"}})
            assert said.emitted == [("response", {"body": {"hello": "ada"}})]
            assert said.routed == [] and said.failed is None

            split = await app.inject("by-method", {"method": "POST", "body": {}})
            assert [port for port, _ in split.routed] == ["write"]
            assert split.emitted == []  # routed, not carried on to api-auth

            broken = await app.inject("say-hello", {"params": {}})
            assert isinstance(broken.failed, KeyError)

            with pytest.raises(KeyError, match="no in-port 'nope'"):
                await app.inject("say-hello", {}, port="nope")

    asyncio.run(main())


def test_env_and_a_broken_flow(tmp_path: Path, lolo_state: Path, lolo_env: dict[str, str]) -> None:
    lolo_env["CHAT_HISTORY"] = "0"

    async def main() -> None:
        async with run_flow(CHAT, state=lolo_state, env=lolo_env) as app:
            assert app.flow.env["HISTORY_SIZE"] == "0"

    asyncio.run(main())
    broken = tmp_path / "broken.yaml"
    broken.write_text("app: x\nnodes:\n  - id: a\n    type: lolo/nope\n")

    async def load_broken() -> None:
        async with run_flow(broken, state=lolo_state):
            pass

    with pytest.raises(FlowErrors) as errors:
        asyncio.run(load_broken())
    assert f"{broken}:4:" in str(errors.value.errors[0])
