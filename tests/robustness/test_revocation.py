"""Revocation takes effect (issue 10, item 3): revoking a key closes the live connections
that used it within a second, with close code 4401, in every app sharing the store."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from tests.redis_support import RedisServer
from tests.support import ROOT, LoloProcess, lolo_keys, lolo_run_command

CHAT_AUTH = ROOT / "flows" / "chat-auth.yaml"


def revoke(key: str, *store: str) -> float:
    """Revoke ``key`` with the CLI; return when the command finished (monotonic)."""
    subprocess.run(
        [*lolo_run_command(), "keys", "revoke", key.split("_")[1], *store],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return time.monotonic()


async def connect(url: str, key: str) -> websockets.ClientConnection:
    ws = await websockets.connect(f"{url}?lolo-api-key={key}")
    await ws.recv()  # the connect message
    return ws


async def closed_within(ws: websockets.ClientConnection, seconds: float) -> float:
    """Wait for the server to close ``ws``; return when (monotonic)."""

    async def until_closed() -> None:
        while True:
            await ws.recv()

    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(until_closed(), seconds)
    return time.monotonic()


def test_revoking_a_key_closes_its_connections_in_every_process(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    doomed = lolo_keys(state, "create", "--email", "ann@example.com")
    kept = lolo_keys(state, "create", "--email", "bob@example.com")
    with LoloProcess(CHAT_AUTH, state=state) as one, LoloProcess(CHAT_AUTH, state=state) as two:

        async def main() -> None:
            ann1 = await connect(one.url(), doomed)
            ann2 = await connect(two.url(), doomed)
            bob = await connect(one.url(), kept)
            revoked_at = await asyncio.to_thread(revoke, doomed, "--state", str(state))
            for ws in (ann1, ann2):
                closed_at = await closed_within(ws, 3)
                assert closed_at - revoked_at < 1.0
                assert ws.close_code == 4401
                assert ws.close_reason == "API key revoked"
            # Bob is untouched and still chats; Ann cannot come back.
            await bob.send("still here")
            await bob.ping()
            with pytest.raises(websockets.InvalidStatus) as refused:
                await connect(one.url(), doomed)
            assert refused.value.response.status_code == 401
            await bob.close()

        asyncio.run(main())
        assert "key lolo_" in one.stderr() and "(4401)" in one.stderr()
        assert doomed not in one.stderr() + two.stderr()  # the key itself is never logged


def test_nothing_a_revoked_client_sends_reaches_the_others(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    doomed = lolo_keys(state, "create", "--email", "ann@example.com")
    kept = lolo_keys(state, "create", "--email", "bob@example.com")
    with LoloProcess(CHAT_AUTH, state=state) as app:

        async def main() -> list[str]:
            ann = await connect(app.url(), doomed)
            bob = await connect(app.url(), kept)
            await asyncio.to_thread(revoke, doomed, "--state", str(state))
            await closed_within(ann, 3)
            with pytest.raises(websockets.ConnectionClosed):
                await ann.send("sneaking in")
            await asyncio.sleep(0.3)
            heard: list[str] = []
            while True:
                try:
                    heard.append(str(await asyncio.wait_for(bob.recv(), 0.3)))
                except TimeoutError:
                    break
            await bob.close()
            return heard

        heard = asyncio.run(main())
        assert not any("sneaking in" in text for text in heard)


def test_revocation_on_redis_closes_the_connection(redis_server: RedisServer) -> None:
    done = subprocess.run(
        [
            *lolo_run_command(),
            "keys",
            "create",
            "--email",
            "ann@example.com",
            "--redis",
            redis_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    key = done.stdout.strip()
    with LoloProcess(CHAT_AUTH, "--redis", redis_server.url) as app:

        async def main() -> None:
            ws = await connect(app.url(), key)
            revoked_at = await asyncio.to_thread(revoke, key, "--redis", redis_server.url)
            assert await closed_within(ws, 3) - revoked_at < 1.0
            assert ws.close_code == 4401

        asyncio.run(main())
