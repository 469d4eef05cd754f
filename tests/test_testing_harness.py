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
            # Non-ASCII goes percent-encoded, as a browser sends it; a query string rides along.
            accented = await app.http("GET", "/hello/zoë?x=1")
            assert (accented.status, accented.json()) == (200, {"hello": "zoë"})

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


NOTES = ROOT / "flows" / "notes-api.yaml"
TICKS = ROOT / "tests" / "e2e" / "flows" / "timer-ticks.yaml"


def test_a_month_of_sweeps_on_the_test_clock(lolo_state: Path, lolo_env: dict[str, str]) -> None:
    """The notes flow's timer expires a note after 30 days; the clock makes that a moment.
    Notes are stamped with the real time, so the clock starts at the real time too."""
    import time

    from lolo_runtime.apikeys import create_key

    day = 86400.0
    lolo_env["NOTES_SWEEP_EVERY"] = "1h"  # 720 sweeps, not 4320: the same test, sooner

    async def main() -> None:
        async with run_flow(NOTES, state=lolo_state, env=lolo_env, clock=time.time()) as app:
            key, _ = await create_key(app.runtime.engine.backend, "ada@example.com")
            auth = {"Authorization": f"Bearer {key}"}
            assert (await app.http("POST", "/notes", {"title": "milk"}, auth)).status == 201
            await app.clock.advance(29 * day)
            assert (await app.http("GET", "/notes/1", headers=auth)).status == 200
            await app.clock.advance(1 * day + 3600)  # past 30 days, and one more sweep
            assert (await app.http("GET", "/notes/1", headers=auth)).status == 404

    asyncio.run(main())


def test_each_tick_runs_to_its_end_before_time_moves_on(
    lolo_state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="lolo")

    def fired() -> list[str]:
        return [r.getMessage().split()[1] for r in caplog.records if "fired" in r.getMessage()]

    async def main() -> None:
        # Just before New York's clocks fall back: the repeated hour has its own ticks.
        async with run_flow(TICKS, state=lolo_state, clock="2024-11-03T01:59:58-04:00") as app:
            await app.clock.advance(0.5)
            assert fired() == []
            await app.clock.advance(3)
            assert fired() == [
                "2024-11-03T01:59:59-04:00",
                "2024-11-03T01:00:00-05:00",
                "2024-11-03T01:00:01-05:00",
            ]
            assert app.clock.now.isoformat() == "2024-11-03T06:00:01.500000+00:00"
            await app.clock.advance_to("2024-11-03T01:00:05-05:00")
            assert fired()[-1] == "2024-11-03T01:00:05-05:00" and len(fired()) == 7

    asyncio.run(main())


def test_the_state_store_expires_values_on_the_test_clock(lolo_state: Path) -> None:
    async def main() -> None:
        async with run_flow(CHAT, state=lolo_state, clock=1_700_000_000) as app:
            await app.state.set("code", "1234", ttl=60)
            await app.clock.advance(59)
            assert await app.state.get("code") == "1234"
            await app.clock.advance(1)
            assert await app.state.get("code") is None

    asyncio.run(main())


def test_the_clock_refuses_what_makes_no_sense(lolo_state: Path) -> None:
    async def main() -> None:
        async with run_flow(CHAT, state=lolo_state) as app:
            with pytest.raises(RuntimeError, match="runs on the real clock"):
                app.clock  # noqa: B018
        async with run_flow(CHAT, state=lolo_state, clock=0) as app:
            with pytest.raises(ValueError, match="only moves forward"):
                await app.clock.advance(-1)

    asyncio.run(main())
    with pytest.raises(ValueError, match="has no UTC offset"):
        asyncio.run(_enter(run_flow(CHAT, state=lolo_state, clock="2026-01-01T00:00")))


async def _enter(manager: object) -> None:
    async with manager:  # type: ignore[attr-defined]
        pass
