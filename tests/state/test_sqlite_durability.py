"""SQLite-specific behaviour: durability, crash safety, not blocking the loop, file handling."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from lolo_runtime.state import (
    DEFAULT_STATE_PATH,
    SQLiteBackend,
    StateError,
    resolve_state_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"

    async def write() -> None:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("app")
            await state.set("doc", {"a": [1, 2, 3]})
            await state.set("gone", 1)
            await state.delete("gone")
            assert await state.incr("n", 7) == 7

    async def read() -> tuple[object, object, list[str]]:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("app")
            return await state.get("doc"), await state.get("n"), await state.keys()

    asyncio.run(write())
    assert asyncio.run(read()) == ({"a": [1, 2, 3]}, 7, ["doc", "n"])
    assert integrity(path) == "ok"


def test_ttl_survives_reopen_and_expired_rows_are_purged(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    now = [1000.0]

    def clock() -> float:
        return now[0]

    async def write() -> None:
        async with SQLiteBackend(path, clock=clock) as backend:
            state = backend.for_app("app")
            await state.set("short", 1, ttl=10)
            await state.set("long", 2, ttl=100)

    async def read() -> list[str]:
        async with SQLiteBackend(path, clock=clock) as backend:
            return await backend.for_app("app").keys()

    asyncio.run(write())
    now[0] += 50
    assert asyncio.run(read()) == ["long"]
    with closing(sqlite3.connect(path)) as conn:  # the expired row is really gone
        assert conn.execute("SELECT key FROM lolo_kv").fetchall() == [("long",)]


def test_purge_expired(tmp_path: Path) -> None:
    now = [0.0]

    async def body() -> tuple[int, int, list[str]]:
        async with SQLiteBackend(tmp_path / "s.sqlite3", clock=lambda: now[0]) as backend:
            state = backend.for_app("app")
            for index in range(5):
                await state.set(f"t{index}", index, ttl=1 + index)
            await state.set("keep", 1)
            now[0] = 3.0
            first = await backend.purge_expired()
            second = await backend.purge_expired()
            return first, second, await state.keys()

    assert asyncio.run(body()) == (3, 0, ["keep", "t3", "t4"])


CHILD = r"""
import asyncio, sys
from lolo_runtime.state import SQLiteBackend

async def main(path):
    backend = SQLiteBackend(path)
    await backend.open()
    state = backend.for_app("app")

    async def writer(w):
        i = 0
        while True:
            key = f"w{w}-{i}"
            await state.set(key, {"i": i, "pad": "x" * 300})
            sys.stdout.write(key + "\n")
            sys.stdout.flush()
            i += 1

    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main(sys.argv[1]))
"""


def test_acknowledged_sets_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "crash" / "state.sqlite3"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    acked: list[str] = []
    with (
        open(tmp_path / "child-stderr.txt", "wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=stderr, env=env
        ) as proc,
    ):
        assert proc.stdout is not None
        while len(acked) < 2000:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.decode().strip())
        proc.send_signal(signal.SIGKILL)
        # Acks the child printed before it died are still in the pipe: they count too.
        rest = proc.stdout.read()
        acked.extend(line.decode() for line in rest.split(b"\n")[:-1])  # complete lines only
        assert proc.wait() == -signal.SIGKILL
    assert len(acked) >= 2000, (tmp_path / "child-stderr.txt").read_text()

    async def stored() -> dict[str, object]:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("app")
            return {key: await state.get(key) for key in await state.keys()}

    found = asyncio.run(stored())
    missing = [key for key in acked if key not in found]
    assert missing == []
    for key in acked:
        value = found[key]
        assert isinstance(value, dict)
        assert value["i"] == int(key.split("-")[1])
    assert integrity(path) == "ok"


def test_event_loop_keeps_running_while_a_write_waits_for_the_lock(tmp_path: Path) -> None:
    """Another connection holds the write lock; our write waits, the loop does not."""
    path = tmp_path / "state.sqlite3"

    async def body() -> list[float]:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("app")
            await state.set("warm-up", 1)
            loop = asyncio.get_running_loop()
            ticks: list[float] = []
            with closing(sqlite3.connect(path, isolation_level=None)) as blocker:
                blocker.execute("BEGIN IMMEDIATE")
                write = asyncio.create_task(state.set("k", "v"))
                start = loop.time()
                while loop.time() - start < 0.5:
                    await asyncio.sleep(0.01)
                    ticks.append(loop.time())
                assert not write.done()  # really stuck behind the lock ...
                blocker.execute("COMMIT")
            await asyncio.wait_for(write, 5)  # ... and done once it is released
            assert await state.get("k") == "v"
            return ticks

    ticks = asyncio.run(body())
    # The lock is held for 0.5 s; a loop blocked by the waiting write would show one big gap.
    assert len(ticks) >= 10
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25


def test_awaiting_writes_yields_to_other_tasks(tmp_path: Path) -> None:
    async def body() -> int:
        async with SQLiteBackend(tmp_path / "state.sqlite3") as backend:
            state = backend.for_app("app")
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0)

            task = asyncio.create_task(ticker())
            for index in range(300):
                await state.set(f"k{index}", index)
            stop.set()
            await task
            assert len(await state.keys()) == 300
            return ticks

    assert asyncio.run(body()) >= 300


def test_two_backends_on_one_file_see_each_other_and_incr_stays_exact(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"

    async def body() -> None:
        async with SQLiteBackend(path) as one, SQLiteBackend(path) as two:
            await one.for_app("app").set("hello", "from one")
            assert await two.for_app("app").get("hello") == "from one"

            async def bump(backend: SQLiteBackend) -> None:
                for _ in range(100):
                    await backend.for_app("app").incr("count")

            await asyncio.gather(*(bump(b) for b in (one, two, one, two)))
            assert await one.for_app("app").get("count") == 400

    asyncio.run(body())


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / ".lolo" / "state.sqlite3"

    async def body() -> None:
        async with SQLiteBackend(path) as backend:
            await backend.for_app("app").set("k", 1)

    asyncio.run(body())
    assert path.is_file()
    assert integrity(path) == "ok"


def test_wal_mode_is_used(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"

    async def body() -> None:
        async with SQLiteBackend(path) as backend:
            await backend.for_app("app").set("k", 1)

    asyncio.run(body())
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "content", [b"this is not a database\n" * 100, b"SQLite format 3\x00" + b"\xff" * 200]
)
def test_corrupt_file_gives_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(content)

    async def body() -> None:
        backend = SQLiteBackend(path)
        with pytest.raises(StateError) as info:
            await backend.open()
        assert str(path) in str(info.value)
        with pytest.raises(StateError, match="not open"):
            await backend.for_app("app").get("k")
        await backend.close()  # harmless after a failed open

    asyncio.run(body())
    assert path.read_bytes() == content  # and it was left alone


def test_directory_as_path_gives_a_clear_error(tmp_path: Path) -> None:
    async def body() -> None:
        with pytest.raises(StateError) as info:
            await SQLiteBackend(tmp_path).open()
        assert str(tmp_path) in str(info.value)

    asyncio.run(body())


def test_backend_can_be_reopened_but_not_opened_twice(tmp_path: Path) -> None:
    async def body() -> None:
        backend = SQLiteBackend(tmp_path / "state.sqlite3")
        await backend.open()
        with pytest.raises(StateError, match="already open"):
            await backend.open()
        await backend.for_app("app").set("k", 1)
        await backend.close()
        await backend.close()
        await backend.open()
        assert await backend.for_app("app").get("k") == 1
        await backend.close()

    asyncio.run(body())


def test_bad_synchronous_setting_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="synchronous"):
        SQLiteBackend(tmp_path / "s.sqlite3", synchronous="OFF")


def test_state_path_precedence() -> None:
    assert resolve_state_path(Path("x.db"), {"LOLO_STATE": "y.db"}) == Path("x.db")
    assert resolve_state_path(None, {"LOLO_STATE": "y.db"}) == Path("y.db")
    assert resolve_state_path(None, {"LOLO_STATE": ""}) == DEFAULT_STATE_PATH
    assert resolve_state_path(None, {}) == Path(".lolo/state.sqlite3")
