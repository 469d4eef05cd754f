"""The inspector on a real ``lolo-run flows/chat.yaml --inspect``, with real WebSocket
clients chatting: Prometheus text, the live socket, the key, the loopback rules, and
nothing at all without --inspect."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.inspector.live_support import (
    KEY,
    chat_client,
    edge_events,
    http_get,
    live_url,
    metrics,
    next_json,
    wait_for,
)
from tests.support import ROOT, LoloProcess

CHAT = ROOT / "flows" / "chat.yaml"
QUIET = {"LOLO_INSPECT_KEY": "", "CHAT_HISTORY": "0"}
"""No key, and no history frames for newcomers (the clients expect chat lines only)."""
MESSAGE_EDGE = {"source": "ws", "port": "message", "target": "process-request", "in_port": "msg"}


@pytest.fixture
def inspected() -> Iterator[LoloProcess]:
    with LoloProcess(CHAT, "--inspect", env=QUIET) as server:
        yield server


def test_metrics_count_the_chat_as_it_goes(inspected: LoloProcess) -> None:
    before = metrics(inspected)
    assert before.value("lolo_node_calls_total", app="chat", node="handle-messages") == 0
    assert before.value("lolo_sessions_open", app="chat", trigger="ws") == 0

    def calls(node: str) -> float:
        return metrics(inspected).value("lolo_node_calls_total", app="chat", node=node)

    async def chat(count: int) -> None:
        async with chat_client(inspected) as (a, a_id), chat_client(inspected) as (b, _):
            wait_for(
                lambda: (
                    metrics(inspected).value("lolo_sessions_open", app="chat", trigger="ws") == 2
                ),
                "two open sessions",
            )
            for n in range(count):
                await a.send(f"m{n}")
            for n in range(count):
                assert await asyncio.wait_for(b.recv(), 5) == f"{a_id} says: m{n}"

    asyncio.run(chat(5))
    wait_for(lambda: calls("handle-messages") == 5, "5 calls of handle-messages")
    wait_for(lambda: calls("process-request") == 2 + 5 + 2, "req, msg and close calls")
    now = metrics(inspected)
    assert now.value("lolo_node_calls_total", app="chat", node="affirm-connection") == 2
    assert now.value("lolo_edge_events_total", app="chat", **MESSAGE_EDGE) == 5
    assert now.value("lolo_sessions_open", app="chat", trigger="ws") == 0
    assert now.value("lolo_node_errors_total", app="chat", node="handle-messages") == 0
    p50 = now.value("lolo_node_handler_seconds", app="chat", node="handle-messages", quantile="0.5")
    assert not math.isnan(p50) and 0 < p50 < 1
    asyncio.run(chat(3))
    wait_for(lambda: calls("handle-messages") == 8, "the count to rise to 8")
    assert metrics(inspected).value("lolo_edge_events_total", app="chat", **MESSAGE_EDGE) == 8


def test_the_live_socket_sends_changes_at_most_four_times_a_second(
    inspected: LoloProcess,
) -> None:
    async def scenario() -> None:
        async with connect(live_url(inspected)) as live:
            assert await next_json(live) == {"type": "hello", "needsKey": False}
            first = await next_json(live)
            assert first["type"] == "update"
            figures = first["figures"]
            assert figures["app"] == "chat"
            assert {n["id"] for n in figures["nodes"]} == {
                "ws",
                "page",
                "process-request",
                "affirm-connection",
                "handle-messages",
            }
            assert len(figures["edges"]) == 5
            assert edge_events(figures, "ws.message->process-request.msg") == 0
            async with chat_client(inspected) as (a, _), chat_client(inspected) as (b, _):
                stamps: list[float] = []
                seen_log: list[str] = []
                sent = 0
                latest = 0
                while len(stamps) < 6 or latest < sent:
                    await a.send(f"m{sent}")
                    sent += 1
                    await asyncio.wait_for(b.recv(), 5)
                    try:
                        update = await next_json(live, timeout=0.02)
                    except TimeoutError:
                        continue
                    stamps.append(time.monotonic())
                    seen_log += [line["text"] for line in update.get("log", [])]
                    if "figures" in update:
                        latest = edge_events(update["figures"], "ws.message->process-request.msg")
                    assert sent < 2000, "the figures never caught up"
                gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
                assert min(gaps) >= 0.2, gaps
                assert any("client has connected" in text for text in seen_log)
            # Quiet now: after the closes are counted, nothing changes, so nothing is sent.
            while True:
                update = await next_json(live)
                if update.get("figures", {}).get("sessions") == [
                    {"trigger": "ws", "path": "/socket", "open": 0}
                ]:
                    break
            with pytest.raises(TimeoutError):
                extra = await next_json(live, timeout=1.0)
                print("unexpected update:", extra)

    asyncio.run(scenario())


def test_with_a_key_every_figure_needs_it_and_it_is_never_logged() -> None:
    env = {**QUIET, "LOLO_INSPECT_KEY": KEY}
    with LoloProcess(CHAT, "--inspect", "--log-level", "debug", env=env) as server:
        assert http_get(server, "/_lolo/metrics")[0] == 401
        assert http_get(server, "/_lolo/metrics", authorization="Bearer wrong")[0] == 401
        assert http_get(server, "/_lolo/metrics", authorization=KEY)[0] == 401
        good = metrics(server, authorization=f"Bearer {KEY}")
        assert good.value("lolo_sessions_open", app="chat", trigger="ws") == 0
        status, fields, page = http_get(server, "/_lolo/")  # the shell holds no figures
        assert status == 200 and b"lolo inspector" in page
        assert "connect-src 'self'" in fields["content-security-policy"]

        async def sockets() -> None:
            for wrong in ("Bearer not-the-key", KEY, "hello"):
                async with connect(live_url(server)) as live:
                    assert await next_json(live) == {"type": "hello", "needsKey": True}
                    await live.send(wrong)
                    with pytest.raises(ConnectionClosed) as closed:
                        await next_json(live)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
            async with connect(live_url(server)) as live:
                assert (await next_json(live))["needsKey"] is True
                await live.send(f"Bearer {KEY}")
                update = await next_json(live)
                assert update["figures"]["app"] == "chat"

        asyncio.run(sockets())
        assert server.stop() == 0
        stderr = server.stderr()
    assert KEY not in stderr
    assert " DEBUG " in stderr  # the library logs frames at this level, but not the inspector's


def test_without_a_key_other_sites_and_names_are_refused(inspected: LoloProcess) -> None:
    assert http_get(inspected, "/_lolo/metrics", host="rebound.example")[0] == 403
    assert http_get(inspected, "/_lolo/", host="rebound.example")[0] == 403

    async def foreign_page() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(live_url(inspected), origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403

    asyncio.run(foreign_page())


def test_without_inspect_there_is_no_inspector() -> None:
    with LoloProcess(CHAT) as server:
        for path in ("/_lolo/", "/_lolo/metrics", "/_lolo/page.js"):
            assert http_get(server, path)[0] == 404, path

        async def live() -> None:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(live_url(server)):
                    pass
            assert refused.value.response.status_code == 404

        asyncio.run(live())
