"""API-key auth in front of the chat: real keys, a real lolo-run, real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from lolo_runtime.state import SQLiteBackend
from tests.support import ROOT, LoloProcess, lolo_keys

PROBE_FLOW = ROOT / "tests" / "e2e" / "flows" / "chat-auth-probe.yaml"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def server(state: Path) -> Iterator[LoloProcess]:
    with LoloProcess(PROBE_FLOW, "--log-level", "debug", state=state) as process:
        yield process


def probe_calls(state: Path) -> int:
    async def read() -> int:
        async with SQLiteBackend(state) as backend:
            return int(await backend.for_app("chat-auth").get("probe:calls", 0))

    return asyncio.run(read())


async def refused_status(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers):
            pass
    return refused.value.response.status_code


def test_a_connection_without_a_valid_key_is_refused_with_401(
    server: LoloProcess, state: Path
) -> None:
    good = lolo_keys(state, "create", "--email", "ann@example.com")
    revoked = lolo_keys(state, "create", "--email", "bob@example.com")
    lolo_keys(state, "revoke", revoked.split("_")[1])
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    base = server.url()

    async def attempts() -> list[int]:
        return [
            await refused_status(base),
            await refused_status(base + "?lolo-api-key="),
            await refused_status(base + "?lolo-api-key=not-a-key"),
            await refused_status(base + f"?lolo-api-key={wrong}"),
            await refused_status(base + f"?lolo-api-key={revoked}"),
            await refused_status(base, {"lolo-api-key": revoked}),
        ]

    assert asyncio.run(attempts()) == [401] * 6
    assert server.stop() == 0
    assert probe_calls(state) == 0
    log = server.stderr()
    assert "client has connected" not in log
    assert "Traceback" not in log


def test_valid_keys_connect_and_messages_are_signed_with_the_senders_email(
    server: LoloProcess, state: Path
) -> None:
    ann = lolo_keys(state, "create", "--email", "ann@example.com")
    bob = lolo_keys(state, "create", "--email", "bob@example.com", "--account", "acct-bob")

    async def chat() -> tuple[str, str]:
        async with (
            connect(server.url() + f"?lolo-api-key={ann}") as a,
            connect(server.url(), additional_headers={"lolo-api-key": bob}) as b,
        ):
            assert json.loads(await a.recv())["connected"] is True
            assert json.loads(await b.recv())["connected"] is True
            await a.send("hello")
            from_a = await asyncio.wait_for(b.recv(), 5)
            await b.send("hi ann")
            from_b = await asyncio.wait_for(a.recv(), 5)
            return str(from_a), str(from_b)

    assert asyncio.run(chat()) == ("ann@example.com says: hello", "bob@example.com says: hi ann")
    assert server.stop() == 0
    assert probe_calls(state) == 2
    log = server.stderr()
    # DEBUG was on for every logger, the websockets library's handshake lines included:
    # no line may hold a key, whether it came in the query string or a header.
    assert "GET /socket?lolo-api-key=[REDACTED]" in log
    for secret in (ann, bob, ann.split("_", 2)[2], bob.split("_", 2)[2]):
        assert secret not in log


def test_a_key_created_while_the_app_runs_works_at_once(server: LoloProcess, state: Path) -> None:
    async def connect_with(key: str) -> bool:
        async with connect(server.url() + f"?lolo-api-key={key}") as ws:
            return bool(json.loads(await ws.recv())["connected"])

    key = lolo_keys(state, "create", "--email", "late@example.com")
    assert asyncio.run(connect_with(key))
    lolo_keys(state, "revoke", key.split("_")[1])
    assert asyncio.run(refused_status(server.url() + f"?lolo-api-key={key}")) == 401


def test_a_percent_encoded_key_works_and_never_reaches_the_debug_log(
    server: LoloProcess, state: Path
) -> None:
    """The query's name and value may be percent-encoded (once, twice, in any case):
    the key is accepted as a browser would send it, and DEBUG lines never show it."""
    key = lolo_keys(state, "create", "--email", "enc@example.com")
    secret = key.split("_", 2)[2]
    encoded = "".join(f"%{byte:02x}" for byte in key.encode())
    urls = [
        server.url() + f"?lolo%2Dapi%2Dkey={key.replace('_', '%5F')}",
        server.url() + f"?lolo-api-key={encoded}",
    ]

    async def scenario() -> list[object]:
        greetings = []
        for url in urls:
            async with connect(url) as ws:
                greetings.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        # Refused tries leave the same kind of lines in the log.
        with pytest.raises(InvalidStatus):
            async with connect(server.url() + "?lolo%252Dapi%252Dkey=" + key.replace("_", "%255F")):
                pass
        return greetings

    greetings = asyncio.run(scenario())
    assert [g["connected"] for g in greetings] == [True, True]  # type: ignore[index]
    assert server.stop() == 0
    log = server.stderr()
    assert "< GET /socket?" in log  # the websockets library's DEBUG lines are there
    for form in (
        secret,
        secret.replace("_", "%5F"),
        secret.replace("_", "%255F"),
        "".join(f"%{byte:02x}" for byte in secret.encode()),
    ):
        assert form not in log
