"""flows/chat-cluster.yaml end to end: on one process (SQLite, no Redis), and on two
``lolo-run`` processes on two ports sharing one real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.redis_support import RedisServer
from tests.support import ROOT, LoloProcess, lolo_run_command

CLUSTER = ROOT / "flows" / "chat-cluster.yaml"
CHAT = ROOT / "flows" / "chat.yaml"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ChatProcess(LoloProcess):
    """``lolo-run FLOW --port 0``, with ``--redis URL`` (and no ``--state``: the two are a
    usage error together) when ``redis`` is given, else on a SQLite file of its own.
    $LOLO_REDIS_URL from the test's environment is never inherited."""

    def __init__(
        self,
        flow: Any = CLUSTER,
        *args: str,
        redis: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(flow, *args, env=env)
        self.env.pop("LOLO_REDIS_URL", None)
        self.redis = redis

    def start(self) -> ChatProcess:
        if self.redis is None:
            super().start()
            return self
        command = [
            *lolo_run_command(),
            str(self.flow),
            "--port",
            "0",
            "--redis",
            self.redis,
            *self.args,
        ]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, env=self.env, cwd=ROOT
        )
        self.port = self._wait_for_listening()
        return self

    def __enter__(self) -> ChatProcess:
        return self.start()


class Client:
    """A connected chat client: its connection, session id and (if sent) history."""

    def __init__(self, ws: ClientConnection, greeting: str, history: list[Any] | None):
        self.ws = ws
        self.greeting = greeting
        self.id = str(json.loads(greeting)["yourConnectionId"])
        self.history = history

    async def recv(self, timeout: float = 5) -> str | bytes:
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def silent(self, wait: float = 0.3) -> None:
        """Nothing more arrives within ``wait`` seconds."""
        try:
            frame = await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            return
        pytest.fail(f"unexpected frame {frame!r}")


async def history_after_greeting(ws: ClientConnection, wait: float = 0.5) -> list[Any] | None:
    try:
        frame = await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return None
    assert isinstance(frame, str), frame
    parsed = json.loads(frame)
    assert set(parsed) == {"history"}, frame
    history: list[Any] = parsed["history"]
    return history


@asynccontextmanager
async def chat_client(
    server: LoloProcess, *, query: str = "", wait_for_history: float = 0.0
) -> AsyncIterator[Client]:
    """Connect; the first frame must be the greeting. With ``wait_for_history``, a history
    frame is waited for that long (and must be the only other frame by then)."""
    async with connect(server.url() + query, compression=None) as ws:
        greeting = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(greeting, str)
        parsed = json.loads(greeting)
        assert parsed["connected"] is True, greeting
        history = await history_after_greeting(ws, wait_for_history) if wait_for_history else None
        yield Client(ws, greeting, history)


async def newcomer_history(server: LoloProcess, query: str = "") -> list[Any] | None:
    async with chat_client(server, query=query, wait_for_history=0.5) as newcomer:
        return newcomer.history


# ----------------------------------------------------------------------- one process


@pytest.fixture
def single() -> Iterator[ChatProcess]:
    with ChatProcess() as server:
        yield server


def test_the_greeting_is_the_tutorial_chats(single: ChatProcess) -> None:
    async def greetings() -> tuple[str, str]:
        with ChatProcess(CHAT) as tutorial:
            async with chat_client(tutorial) as old, chat_client(single) as new:
                return old.greeting, new.greeting

    old, new = asyncio.run(greetings())
    old_id = json.loads(old)["yourConnectionId"]
    new_id = json.loads(new)["yourConnectionId"]
    assert UUID.match(old_id) and UUID.match(new_id)
    # The same bytes but for the id: same fields, same order, same spacing.
    assert (
        new.replace(new_id, "ID")
        == old.replace(old_id, "ID")
        == '{"connected":true,"yourConnectionId":"ID"}'
    )


def test_a_message_reaches_everyone_else_signed_and_not_its_sender(single: ChatProcess) -> None:
    async def scenario() -> None:
        async with chat_client(single) as a, chat_client(single) as b, chat_client(single) as c:
            assert len({a.id, b.id, c.id}) == 3
            await a.ws.send("hi")
            assert await b.recv() == f"{a.id} says: hi"
            assert await c.recv() == f"{a.id} says: hi"
            await b.ws.send("hello a")
            # Had A been sent its own "hi", it would come before B's answer.
            assert await a.recv() == f"{b.id} says: hello a"
            assert await c.recv() == f"{b.id} says: hello a"
            for client in (a, b, c):
                await client.silent()

    asyncio.run(scenario())
    log = single.stderr()
    assert "ERROR" not in log and "Traceback" not in log, log


def test_newcomers_get_the_history_right_after_the_greeting(single: ChatProcess) -> None:
    async def scenario() -> tuple[str, list[Any] | None, list[Any] | None]:
        first = await newcomer_history(single)
        async with chat_client(single) as a, chat_client(single) as b:
            for text in ("one", "two", "three"):
                await a.ws.send(text)
                assert await b.recv() == f"{a.id} says: {text}"
            await b.ws.send("four")
            assert await a.recv() == f"{b.id} says: four"
            later = await newcomer_history(single)
            return a.id + " " + b.id, first, later

    ids, first, later = asyncio.run(scenario())
    a_id, b_id = ids.split()
    assert first is None  # nothing said yet: no history frame at all
    assert later == [
        {"n": 1, "from": a_id, "message": "one"},
        {"n": 2, "from": a_id, "message": "two"},
        {"n": 3, "from": a_id, "message": "three"},
        {"n": 4, "from": b_id, "message": "four"},
    ]


async def say(server: LoloProcess, messages: list[str | bytes]) -> list[str | bytes]:
    """One client sends ``messages``; what a second client received is returned."""
    async with chat_client(server) as a, chat_client(server) as b:
        for message in messages:
            await a.ws.send(message)
        return [await b.recv() for _ in messages]


def test_the_history_keeps_the_last_chat_history_messages() -> None:
    with ChatProcess(env={"CHAT_HISTORY": "5"}) as server:
        texts: list[str | bytes] = [f"m{i}" for i in range(12)]
        asyncio.run(say(server, texts))
        history = asyncio.run(newcomer_history(server))
    assert history is not None
    assert [entry["message"] for entry in history] == [f"m{i}" for i in range(7, 12)]
    assert [entry["n"] for entry in history] == list(range(8, 13))


def test_chat_history_0_keeps_nothing() -> None:
    with ChatProcess(env={"CHAT_HISTORY": "0"}) as server:
        received = asyncio.run(say(server, ["a", "b"]))
        assert len(received) == 2  # relayed all the same
        assert asyncio.run(newcomer_history(server)) is None


def test_the_history_frame_stays_within_chat_history_max_bytes() -> None:
    budget = 3000
    # 1,000-byte messages (500 two-byte characters: the budget counts bytes, not
    # characters); each entry is about 1,070 bytes of JSON, so two fit and three do not.
    texts: list[str | bytes] = [f"{i:03d}" + "é" * 500 for i in range(10)]
    with ChatProcess(env={"CHAT_HISTORY": "50", "CHAT_HISTORY_MAX_BYTES": str(budget)}) as server:
        asyncio.run(say(server, texts))

        async def raw_history() -> str | bytes:
            async with chat_client(server) as newcomer:
                return await newcomer.recv(2)

        frame = asyncio.run(raw_history())
    assert isinstance(frame, str)
    size = len(frame.encode())
    assert size <= budget, size
    history = json.loads(frame)["history"]
    # The newest entries, oldest first, and as many as fit.
    assert [entry["message"] for entry in history] == texts[-len(history) :]
    assert len(history) == 2
    one_more = json.dumps(
        {"n": 8, "from": history[0]["from"], "message": texts[-3]},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert size + len(one_more.encode()) + 1 > budget


def test_a_budget_smaller_than_one_entry_sends_no_history() -> None:
    with ChatProcess(env={"CHAT_HISTORY_MAX_BYTES": "40"}) as server:
        asyncio.run(say(server, ["a message that cannot fit in forty bytes with its sender"]))
        assert asyncio.run(newcomer_history(server)) is None


def test_binary_and_over_long_messages_are_relayed_but_not_kept() -> None:
    limit = 2048
    over_in_bytes = "é" * 1100  # 1,100 characters but 2,200 bytes: over the limit
    at_limit = "x" * limit
    messages: list[str | bytes] = [
        "first",
        b"\x00\x01binary\xff",
        "y" * 5000,
        over_in_bytes,
        at_limit,
        "last",
    ]
    with ChatProcess() as server:
        received = asyncio.run(say(server, messages))
        history = asyncio.run(newcomer_history(server))
        log = server.stderr()
    sender = str(received[0]).split(" says: ")[0]
    assert received == [
        f"{sender} says: first",
        b"\x00\x01binary\xff",  # a binary frame, as it was sent
        f"{sender} says: {'y' * 5000}",
        f"{sender} says: {over_in_bytes}",
        f"{sender} says: {at_limit}",
        f"{sender} says: last",
    ]
    assert history == [
        {"n": 1, "from": sender, "message": "first"},
        {"n": 2, "from": sender, "message": at_limit},
        {"n": 3, "from": sender, "message": "last"},
    ]
    assert "ERROR" not in log, log


# ----------------------------------------------------------------------- two processes


@asynccontextmanager
async def clients(servers: list[LoloProcess], query: str = "") -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(chat_client(server, query=query)) for server in servers
        ]


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[ChatProcess, ChatProcess]]:
    with ChatProcess(redis=redis_server.url) as a, ChatProcess(redis=redis_server.url) as b:
        yield a, b


@pytest.mark.timeout(60)
def test_six_clients_on_two_processes_each_get_every_other_message_once_in_order(
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    a, b = pair
    assert a.port != b.port
    per_sender = 20

    async def scenario() -> tuple[list[Client], dict[str, list[str | bytes]]]:
        async with clients([a, a, a, b, b, b]) as people:
            expected_count = per_sender * (len(people) - 1)
            received: dict[str, list[str | bytes]] = defaultdict(list)

            async def read(client: Client) -> None:
                while len(received[client.id]) < expected_count:
                    received[client.id].append(await client.recv(10))

            async def write(index: int, client: Client) -> None:
                for i in range(per_sender):
                    await client.ws.send(f"c{index}-{i:02d}")
                    await asyncio.sleep(0.001 * ((index + i) % 3))  # interleave

            readers = [asyncio.create_task(read(client)) for client in people]
            await asyncio.gather(*(write(k, client) for k, client in enumerate(people)))
            await asyncio.wait_for(asyncio.gather(*readers), 20)
            for client in people:  # and nothing more: no duplicates, no echoes
                await client.silent(0.5)
            return people, received

    people, received = asyncio.run(scenario())
    names = {client.id: k for k, client in enumerate(people)}
    for k, client in enumerate(people):
        by_sender: dict[int, list[str]] = defaultdict(list)
        for frame in received[client.id]:
            assert isinstance(frame, str)
            sender, _, text = frame.partition(" says: ")
            assert text.startswith(f"c{names[sender]}-"), frame
            by_sender[names[sender]].append(text)
        assert k not in by_sender, f"client {k} got its own messages"
        assert set(by_sender) == set(range(len(people))) - {k}
        for sender_index, texts in by_sender.items():
            # Every message exactly once, in the order its sender sent them.
            assert texts == [f"c{sender_index}-{i:02d}" for i in range(per_sender)], (
                k,
                sender_index,
            )
    for server in pair:
        log = server.stderr()
        assert "ERROR" not in log and "Traceback" not in log, log


def test_the_history_is_shared_between_processes(
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    a, b = pair

    async def scenario() -> tuple[str, list[Any] | None, list[Any] | None]:
        async with clients([a, b]) as (on_a, on_b):
            for text in ("said on A", "again on A"):
                await on_a.ws.send(text)
                assert await on_b.recv() == f"{on_a.id} says: {text}"
            await on_b.ws.send("said on B")
            assert await on_a.recv() == f"{on_b.id} says: said on B"
            seen_on_b = await newcomer_history(b)
            seen_on_a = await newcomer_history(a)
            return on_a.id + " " + on_b.id, seen_on_a, seen_on_b

    ids, seen_on_a, seen_on_b = asyncio.run(scenario())
    a_id, b_id = ids.split()
    expected = [
        {"n": 1, "from": a_id, "message": "said on A"},
        {"n": 2, "from": a_id, "message": "again on A"},
        {"n": 3, "from": b_id, "message": "said on B"},
    ]
    assert seen_on_b == expected
    assert seen_on_a == expected


class Newcomer:
    """What a newcomer got: ``kinds`` of its first frames, up to its third live message
    ("G" greeting, "H" history, "L" live message), and the numbers of the busy messages
    in its history and among those live ones."""

    def __init__(self) -> None:
        self.kinds = ""
        self.history: list[int] = []
        self.live: list[int] = []


async def newcomers_while_busy(a: LoloProcess, b: LoloProcess, count: int) -> list[Newcomer]:
    """Clients of A chat non-stop while ``count`` clients come and go on B, each the only
    one there (so B subscribes anew for each)."""
    async with clients([a, a]) as (talker, listener):
        stop = asyncio.Event()

        async def talk() -> None:
            i = 0
            while not stop.is_set():
                await talker.ws.send(f"busy {i}")
                i += 1
                await asyncio.sleep(0.002)

        async def drain() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listener.ws.recv(), 0.2)

        background = [asyncio.create_task(talk()), asyncio.create_task(drain())]
        seen = []
        try:
            for _ in range(count):
                newcomer = Newcomer()
                async with connect(b.url(), compression=None) as ws:
                    while newcomer.kinds.count("L") < 3:
                        frame = await asyncio.wait_for(ws.recv(), 5)
                        assert isinstance(frame, str)
                        if frame.startswith('{"connected":true,"yourConnectionId":'):
                            newcomer.kinds += "G"
                        elif frame.startswith('{"history":'):
                            newcomer.kinds += "H"
                            newcomer.history = [
                                int(entry["message"].split()[1])
                                for entry in json.loads(frame)["history"]
                            ]
                        else:
                            assert frame.startswith(f"{talker.id} says: busy "), frame
                            newcomer.kinds += "L"
                            newcomer.live.append(int(frame.split()[-1]))
                seen.append(newcomer)
        finally:
            stop.set()
            await asyncio.gather(*background)
        return seen


def test_a_newcomer_is_greeted_first_while_another_process_is_busy(
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    seen = asyncio.run(newcomers_while_busy(*pair, 25))
    kinds = [newcomer.kinds for newcomer in seen]
    assert all(k.startswith("G") and k.count("G") == 1 for k in kinds), kinds
    # Nothing falls between the history and the live messages: a message is kept before
    # it is sent, and the history is read after the newcomer joined.
    with_history = [newcomer for newcomer in seen if newcomer.history]
    assert len(with_history) >= 20
    for newcomer in with_history:
        assert newcomer.history == list(range(newcomer.history[0], newcomer.history[-1] + 1))
        assert newcomer.live == list(range(newcomer.live[0], newcomer.live[0] + 3))
        assert newcomer.live[0] <= newcomer.history[-1] + 1, (newcomer.history[-3:], newcomer.live)


def test_a_newcomer_gets_the_history_before_live_messages_while_another_process_is_busy(
    pair: tuple[ChatProcess, ChatProcess],
) -> None:
    seen = asyncio.run(newcomers_while_busy(*pair, 25))
    for newcomer in seen:
        if newcomer.kinds.startswith("GL"):
            # No history frame: the history was still empty when this newcomer read it
            # (the talker had only just started), so it sees every message from the first.
            assert newcomer.live[0] == 0, (newcomer.kinds, newcomer.live)
        else:
            assert newcomer.kinds.startswith("GH"), newcomer.kinds
    assert sum(newcomer.kinds.startswith("GH") for newcomer in seen) >= 20


def create_key(redis_url: str, email: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LOLO_REDIS_URL"}
    done = subprocess.run(
        [*lolo_run_command(), "keys", "create", "--email", email, "--redis", redis_url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
    )
    key = done.stdout.strip()
    assert key.startswith("lolo_"), done
    return key


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    return refused.value.response.status_code


def test_with_chat_require_key_only_key_holders_chat_signed_with_their_email_across_processes(
    redis_server: RedisServer,
) -> None:
    ann = create_key(redis_server.url, "ann@example.com")
    bob = create_key(redis_server.url, "bob@example.com")
    env = {"CHAT_REQUIRE_KEY": "1"}
    with (
        ChatProcess(redis=redis_server.url, env=env) as a,
        ChatProcess(redis=redis_server.url, env=env) as b,
    ):

        async def scenario() -> tuple[list[int], list[str | bytes], list[Any] | None]:
            statuses = [
                await refused_status(server.url() + query)
                for server in (a, b)
                for query in (
                    "",
                    "?lolo-api-key=",
                    "?lolo-api-key=lolo_0_nope",
                    "?lolo-api-key=" + ann[:-3] + "zzz",
                )
            ]
            async with (
                chat_client(a, query="?lolo-api-key=" + ann) as on_a,
                chat_client(b, query="?lolo-api-key=" + bob) as on_b,
                chat_client(b, query="?lolo-api-key=" + ann) as ann_on_b,
            ):
                await on_a.ws.send("hello from A")
                got = [await on_b.recv(), await ann_on_b.recv()]
                await on_b.ws.send("hello from B")
                got += [await on_a.recv(), await ann_on_b.recv()]
                history = await newcomer_history(a, "?lolo-api-key=" + bob)
            return statuses, got, history

        statuses, got, history = asyncio.run(scenario())
        logs = a.stderr() + b.stderr()
    assert statuses == [401] * 8
    assert (
        got
        == ["ann@example.com says: hello from A"] * 2 + ["bob@example.com says: hello from B"] * 2
    )
    assert history == [
        {"n": 1, "from": "ann@example.com", "message": "hello from A"},
        {"n": 2, "from": "bob@example.com", "message": "hello from B"},
    ]
    for key in (ann, bob):
        assert key.split("_", 2)[2] not in logs
