"""Redis goes away under a two-process chat (flows/chat-cluster.yaml) and comes back on
the same port: a real redis-server, two real lolo-run processes, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_chat_cluster import CLUSTER, ChatProcess, Client, chat_client, clients
from tests.redis_support import RedisServer
from tests.support import ROOT, free_port, lolo_run_command

OUTAGE_SECONDS = 10.0
PROBE = re.compile(r" says: probe( [AB])? \d+$")


def health(server: ChatProcess) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/_lolo/health")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


async def health_becomes(server: ChatProcess, status: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        got, body = await asyncio.to_thread(health, server)
        if got == status:
            return body
        assert time.monotonic() < deadline, (got, body)
        await asyncio.sleep(0.05)


def lines(server: ChatProcess, pattern: str) -> list[str]:
    return [line for line in server.stderr().splitlines() if re.search(pattern, line)]


async def log_shows(server: ChatProcess, pattern: str, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while not (found := lines(server, pattern)):
        assert time.monotonic() < deadline, f"no line like {pattern!r} in:\n{server.stderr()}"
        await asyncio.sleep(0.02)
    return found


async def relayed(sender: Client, receiver: Client, text: str) -> None:
    await sender.ws.send(text)
    assert await receiver.recv(3) == f"{sender.id} says: {text}"


async def first_delivery(
    sender: Client, receiver: Client, tag: str, since: float, within: float = 10.0
) -> float:
    """``sender`` says "<tag> i" every 100 ms until ``receiver`` hears one; how long after
    ``since`` that was. Whatever else ``receiver`` hears meanwhile must not be old news."""
    done = asyncio.Event()

    async def probe() -> None:
        i = 0
        while not done.is_set():
            await sender.ws.send(f"{tag} {i}")
            i += 1
            await asyncio.sleep(0.1)

    prober = asyncio.create_task(probe())
    try:
        while True:
            frame = await receiver.recv(within)
            assert isinstance(frame, str)
            if frame.startswith(f"{sender.id} says: {tag} "):
                return time.monotonic() - since
            # Other probes may be heard (a local prober's); nothing else may be.
            assert PROBE.search(frame), f"unexpected frame after the outage: {frame!r}"
    finally:
        done.set()
        await prober


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[ChatProcess, ChatProcess]]:
    with ChatProcess(redis=redis_server.url) as a, ChatProcess(redis=redis_server.url) as b:
        yield a, b


OUTAGE_LINE = r" ERROR .*Redis at redis://127\.0\.0\.1:\d+/0 unreachable"
RECOVERY_LINE = r" WARNING .*Redis at redis://127\.0\.0\.1:\d+/0 is back after"


@pytest.mark.timeout(60)
def test_a_redis_outage_keeps_local_chat_going_and_cross_process_chat_resumes(
    redis_server: RedisServer,
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    a, b = pair
    figures: dict[str, float] = {}

    async def scenario() -> None:
        async with clients([a, a, b, b]) as (a1, a2, b1, b2):
            await relayed(a1, b1, "before")
            assert await a2.recv() == f"{a1.id} says: before"
            assert await b2.recv() == f"{a1.id} says: before"
            for server in pair:
                assert (await asyncio.to_thread(health, server))[0] == 200

            redis_server.stop()
            down_at = time.monotonic()

            # Health turns 503, with the reason.
            for server in pair:
                body = await health_becomes(server, 503, within=3)
                assert body["status"] == "unavailable"
                [problem] = body["problems"]
                assert f"Redis at {redis_server.url} unreachable for " in problem, problem
            figures["health 503 after"] = time.monotonic() - down_at

            # Each process still relays between its own clients...
            sent_at = time.monotonic()
            await relayed(a1, a2, "local on A")
            figures["local relay during outage"] = time.monotonic() - sent_at
            await relayed(b1, b2, "local on B")
            # ...and its handlers' ctx.state calls fail fast: `remember` logs an error
            # with its node id, and the sender stays connected.
            [failed] = await log_shows(a, rf"\[chat-cluster/remember session={a1.id}\]", within=3)
            figures["remember failed after"] = time.monotonic() - sent_at
            assert " ERROR " in failed and "StateError" in failed, failed
            await log_shows(b, rf"\[chat-cluster/remember session={b1.id}\]", within=3)
            await relayed(a1, a2, "still connected")
            await relayed(a2, a1, "yes")

            # A newcomer during the outage is greeted (no history: it cannot be read)
            # and chats with the clients of its process.
            async with chat_client(a, wait_for_history=0.3) as late:
                assert late.history is None
                await relayed(late, a1, "new here")
                assert await a2.recv() == f"{late.id} says: new here"

            # Messages for the other process are dropped, not kept for later.
            for client in (a1, a2):
                await client.silent(0.1)
            for client in (b1, b2):
                await client.silent(0.1)

            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            for server in pair:  # still down, still said once
                assert (await asyncio.to_thread(health, server))[0] == 503
                assert len(lines(server, OUTAGE_LINE)) == 1, server.stderr()

            await asyncio.to_thread(redis_server.start)
            up_at = time.monotonic()  # start() returned at its first PONG

            a_to_b, b_to_a = await asyncio.gather(
                first_delivery(a1, b1, "probe A", up_at), first_delivery(b2, a2, "probe B", up_at)
            )
            figures["A to B resumed after"], figures["B to A resumed after"] = a_to_b, b_to_a
            # Drain the probes the clients heard meanwhile.
            for client in (a1, a2, b1, b2):
                while True:
                    try:
                        frame = await client.recv(0.3)
                    except TimeoutError:
                        break
                    assert PROBE.search(str(frame)), frame
            for server in pair:
                await health_becomes(server, 200, within=2)
            await relayed(a1, b1, "after")
            assert await a2.recv() == f"{a1.id} says: after"
            assert await b2.recv() == f"{a1.id} says: after"
            await relayed(b1, a1, "after too")

    asyncio.run(scenario())

    # ctx.state works again: a newcomer sees the messages said since Redis came back
    # (those from before are gone with the test's redis-server, which keeps nothing).
    async def history_now() -> list[Any] | None:
        async with chat_client(b, wait_for_history=1) as newcomer:
            return newcomer.history

    history = asyncio.run(history_now())
    assert history is not None
    assert [entry["message"] for entry in history][-2:] == ["after", "after too"]

    for server in pair:
        assert len(lines(server, OUTAGE_LINE)) == 1, server.stderr()
        [back] = lines(server, RECOVERY_LINE)
        assert re.search(
            r"is back after \d+\.\ds: resubscribed to 1 channel\(s\); "
            r"\d+ message\(s\) for other processes were dropped",
            back,
        ), back
        assert "Traceback" not in server.stderr().split("StateError")[0]
    for name, value in figures.items():
        print(f"{name}: {value:.3f}s")
    assert figures["A to B resumed after"] < 2.0, figures
    assert figures["B to A resumed after"] < 2.0, figures
    assert figures["remember failed after"] < 3.0, figures


def test_a_closed_redis_port_stops_start_up_with_the_url_redacted_and_the_reason(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"redis://:s3cret-pass@127.0.0.1:{port}/0"
    started = time.monotonic()
    done = subprocess.run(
        [*lolo_run_command(), str(CLUSTER), "--port", "0", "--redis", url],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "LOLO_REDIS_URL"},
    )
    took = time.monotonic() - started
    assert done.returncode == 1, done
    assert "Listening" not in done.stdout
    assert "s3cret" not in done.stdout + done.stderr
    assert f"redis://:***@127.0.0.1:{port}/0" in done.stderr
    assert re.search(r"(?i)refused|cannot connect|error 111", done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert took < 10, took


def test_a_dropped_connection_without_a_restart_is_noticed_and_mended(
    redis_server: RedisServer,
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    """Redis cuts the processes' connections (CLIENT KILL, as when it restarts behind a
    proxy or drops a slow subscriber): they reconnect, resubscribe, and chat resumes."""
    a, b = pair

    async def scenario() -> float:
        async with clients([a, b]) as (on_a, on_b):
            await relayed(on_a, on_b, "before")
            killed = redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed.startswith(":") and int(killed[1:]) >= 2, killed
            cut_at = time.monotonic()
            return await first_delivery(on_a, on_b, "probe", cut_at)

    took = asyncio.run(scenario())
    print(f"delivery resumed {took:.3f}s after the subscriptions were cut")
    assert took < 2.0


def test_a_stale_publishing_connection_is_not_taken_for_an_outage(
    redis_server: RedisServer,
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    """Redis (or a proxy) closes the idle connections the processes publish and keep their
    state on: the next publish finds its connection closed. That loses what was in flight
    (at most once) but is no outage: no ERROR, health stays 200, chat goes on at once."""
    a, b = pair

    async def scenario() -> list[str | bytes]:
        async with clients([a, b]) as (on_a, on_b):
            await relayed(on_a, on_b, "before")
            await relayed(on_b, on_a, "before too")
            killed = redis_server.command("CLIENT", "KILL", "TYPE", "normal")
            assert killed.startswith(":") and int(killed[1:]) >= 2, killed
            for i in range(5):
                await on_a.ws.send(f"m{i}")
                await asyncio.sleep(0.1)
            got: list[str | bytes] = []
            with contextlib.suppress(TimeoutError):
                while len(got) < 5:
                    got.append(await on_b.recv(1))
            for server in pair:
                assert (await asyncio.to_thread(health, server))[0] == 200
            return got

    got = asyncio.run(scenario())
    expected = [f"m{i}" for i in range(5)]
    texts = [str(frame).split(" says: ")[1] for frame in got]
    print("after the connections were cut, B heard:", texts)
    assert texts == expected[len(expected) - len(texts) :]  # a suffix: at most m0 lost
    assert len(texts) >= 4, texts
    for server in pair:
        assert not lines(server, r" ERROR "), server.stderr()
    if len(texts) == 4:
        assert lines(a, r" WARNING .*1 message\(s\) for other processes were dropped"), a.stderr()
