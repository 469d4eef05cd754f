"""How the SQLite backend keeps ``push`` lists: one row per item (so a push writes one row,
whatever the list's length), schema version 2, and files of version 1 upgraded in place."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from lolo_runtime.state import SQLiteBackend, StateError
from lolo_runtime.state.sqlite import SCHEMA_VERSION

VERSION_1 = (
    """CREATE TABLE lolo_kv (
        app        TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (app, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX lolo_kv_expiry ON lolo_kv (expires_at) WHERE expires_at IS NOT NULL",
    "INSERT INTO lolo_kv VALUES ('app', 'kept', '{\"a\":1}', NULL)",
    "INSERT INTO lolo_kv VALUES ('app', 'feed', '\"old\"', NULL)",
    "PRAGMA user_version=1",
)


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(query))


def test_a_push_writes_one_row_and_trims_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"

    async def main() -> None:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("app")
            for number in range(1, 1001):
                await state.push("log", {"n": number}, keep=10)
            assert await state.get("log") == [{"n": n} for n in range(991, 1001)]

    asyncio.run(main())
    assert rows(path, "SELECT seq, value FROM lolo_list WHERE key = 'log' ORDER BY seq") == [
        (seq, f'{{"n":{seq}}}') for seq in range(991, 1001)
    ]
    assert rows(path, "SELECT count(*) FROM lolo_kv") == [(0,)]


def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as conn:
        for statement in VERSION_1:
            conn.execute(statement)
    conn.close()

    async def main() -> None:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("app")
            assert await state.get("kept") == {"a": 1}
            with pytest.raises(StateError, match="feed"):
                await state.push("feed", "new", keep=5)  # a set() value from version 1
            await state.delete("feed")
            assert await state.push("feed", "new", keep=5) == 1
            assert await state.keys() == ["feed", "kept"]

    asyncio.run(main())
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(2,)]

    async def reopen() -> None:  # and opening it again changes nothing
        async with SQLiteBackend(path) as backend:
            assert await backend.for_app("app").get("feed") == ["new"]

    asyncio.run(reopen())


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match=f"schema version {SCHEMA_VERSION + 1}"):
        asyncio.run(SQLiteBackend(path).open())
    assert rows(path, "SELECT name FROM sqlite_master") == [("future",)]
