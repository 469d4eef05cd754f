"""The state file is private, and a running app notices when it is deleted or replaced.

Real SQLite files in a temporary folder; no mocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from lolo_runtime.state import SQLiteBackend, StateError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_0600_in_a_new_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "deeper" / "state.sqlite3"

    async def scenario() -> None:
        async with SQLiteBackend(path) as backend:
            await backend.for_app("a").set("k", "v")
            assert mode(path) == 0o600
            for side in ("-wal", "-shm"):  # SQLite gives them the file's mode
                companion = path.with_name(path.name + side)
                if companion.exists():
                    assert mode(companion) == 0o600, side

    asyncio.run(scenario())
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700


def test_an_existing_world_readable_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    asyncio.run(_touch(path))
    path.chmod(0o644)
    asyncio.run(_touch(path))
    assert mode(path) == 0o600


async def _touch(path: Path) -> None:
    async with SQLiteBackend(path) as backend:
        await backend.for_app("a").set("k", 1)


@pytest.mark.parametrize("how", ["deleted", "replaced", "folder removed"])
def test_writes_after_the_file_went_away_fail_and_keep_failing(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / ".lolo"
    path = folder / "state.sqlite3"

    async def scenario() -> list[str]:
        failures = []
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("a")
            await state.set("before", 1)  # acknowledged while the file is there
            if how == "deleted":
                path.unlink()
            elif how == "replaced":
                other = tmp_path / "other.sqlite3"
                other.write_bytes(b"")
                os.replace(other, path)
            else:
                for child in folder.iterdir():
                    child.unlink()
                folder.rmdir()
            for attempt in range(3):
                with pytest.raises(StateError) as refused:
                    await state.set(f"after-{attempt}", attempt)
                failures.append(str(refused.value))
        return failures

    with caplog.at_level(logging.ERROR, logger="lolo.state"):
        failures = asyncio.run(scenario())
    expected = "replaced by another file" if how == "replaced" else "deleted"
    assert all(expected in failure and "writes are refused" in failure for failure in failures), (
        failures
    )
    logged = [r for r in caplog.records if r.name == "lolo.state"]
    assert len(logged) == 1  # said once, at ERROR
    assert logged[0].levelno == logging.ERROR


def test_a_store_left_in_place_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"

    async def scenario() -> object:
        async with SQLiteBackend(path) as backend:
            state = backend.for_app("a")
            for n in range(50):
                await state.set("n", n)
            return await state.get("n")

    assert asyncio.run(scenario()) == 49
