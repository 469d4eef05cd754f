"""API keys kept in the state store: create, verify, list, revoke."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lolo_runtime.apikeys import KEYS_APP, create_key, list_keys, revoke_key, verify_key
from lolo_runtime.state import SQLiteBackend

T = TypeVar("T")

KEY_SHAPE = re.compile(r"lolo_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


def run(path: Path, body: Callable[[SQLiteBackend], Awaitable[T]], now: float = 5000.0) -> T:
    async def main() -> T:
        async with SQLiteBackend(path, clock=lambda: now) as backend:
            return await body(backend)

    return asyncio.run(main())


def test_create_and_verify(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        key, record = await create_key(backend, "ada@example.com", account_id="acct_ada")
        assert KEY_SHAPE.fullmatch(key)
        assert key.startswith(record.prefix + "_")
        assert (record.email, record.account_id, record.created) == (
            "ada@example.com",
            "acct_ada",
            5000.0,
        )
        assert await verify_key(backend, key) == record
        assert key not in repr(record)

    run(tmp_path / "s.sqlite3", body)


def test_keys_are_unique_and_get_their_own_account_ids(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        made = [await create_key(backend, f"u{index}@example.com") for index in range(20)]
        assert len({key for key, _ in made}) == 20
        assert len({record.key_id for _, record in made}) == 20
        assert len({record.account_id for _, record in made}) == 20
        assert all(record.account_id.startswith("acct_") for _, record in made)
        for key, record in made:
            assert await verify_key(backend, key) == record

    run(tmp_path / "s.sqlite3", body)


def test_wrong_and_tampered_keys_are_refused(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        key, record = await create_key(backend, "ada@example.com")
        other, _ = await create_key(backend, "bob@example.com")
        secret = key[len(record.prefix) + 1 :]
        flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        wrong_id = "0" * 8 if record.key_id != "0" * 8 else "1" * 8
        for candidate in [
            record.prefix + "_" + flipped,  # last character changed
            record.prefix + "_" + secret[::-1],  # same characters, other order
            other[: len(record.prefix)] + "_" + secret,  # someone else's id, this secret
            f"lolo_{wrong_id}_{secret}",  # unknown id
            record.prefix + "_" + other.split("_", 2)[2],  # this id, someone else's secret
        ]:
            assert KEY_SHAPE.fullmatch(candidate)
            assert await verify_key(backend, candidate) is None, candidate
        assert await verify_key(backend, key) == record

    run(tmp_path / "s.sqlite3", body)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        " ",
        "lolo_",
        "lolo__",
        "lolo_1234567_" + "a" * 43,  # id too short
        "lolo_123456789_" + "a" * 43,  # id too long
        "lolo_ABCDEF12_" + "a" * 43,  # id not lower-case hex
        "lolo_1234abcd_" + "a" * 42,  # secret too short
        "lolo_1234abcd_" + "a" * 44,  # secret too long
        "lolo_1234abcd_" + "a" * 42 + "=",  # not urlsafe-base64
        "LOLO_1234abcd_" + "a" * 43,
        "x" * 100_000,
        "lolo_1234abcd_" + "a" * 43 + "\n",
        "\x00",
        "🎉",
        None,
        12345,
        b"lolo_1234abcd_" + b"a" * 43,
        ["lolo_1234abcd"],
    ],
)
def test_malformed_input_gives_none(tmp_path: Path, presented: Any) -> None:
    async def body(backend: SQLiteBackend) -> Any:
        await create_key(backend, "ada@example.com")
        return await verify_key(backend, presented)

    assert run(tmp_path / "s.sqlite3", body) is None


def test_list_keys_shows_no_secrets(tmp_path: Path) -> None:
    clock = [100.0]

    async def main() -> None:
        async with SQLiteBackend(tmp_path / "s.sqlite3", clock=lambda: clock[0]) as backend:
            assert await list_keys(backend) == []
            made = []
            for email in ["c@example.com", "a@example.com", "b@example.com"]:
                made.append(await create_key(backend, email, account_id="acct_" + email[0]))
                clock[0] += 1
            listed = await list_keys(backend)
            assert listed == [record for _, record in made]  # oldest first
            assert [r.email for r in listed] == ["c@example.com", "a@example.com", "b@example.com"]
            assert [r.created for r in listed] == [100.0, 101.0, 102.0]
            for (key, _), record in zip(made, listed, strict=True):
                assert record.prefix == key[: len("lolo_") + 8]
                assert key not in repr(record)
                assert hashlib.sha256(key.encode()).hexdigest() not in repr(record)

    asyncio.run(main())


def test_revoke(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        by_id, by_prefix, by_key, kept = [
            await create_key(backend, "a@example.com") for _ in "1234"
        ]
        assert await revoke_key(backend, by_id[1].key_id) is True
        assert await revoke_key(backend, by_prefix[1].prefix) is True
        assert await revoke_key(backend, by_key[0]) is True
        for key, _ in (by_id, by_prefix, by_key):
            assert await verify_key(backend, key) is None
        assert await revoke_key(backend, by_id[1].key_id) is False  # already gone
        for bad in ["", "nope", "lolo_", "1234", "lolo_zzzzzzzz", "x" + kept[1].key_id]:
            assert await revoke_key(backend, bad) is False
        assert await verify_key(backend, kept[0]) == kept[1]
        assert await list_keys(backend) == [kept[1]]

    run(tmp_path / "s.sqlite3", body)


def test_keys_live_in_a_reserved_namespace(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        _, record = await create_key(backend, "a@example.com")
        assert await backend.for_app("my-app").keys() == []
        assert await backend.for_app(KEYS_APP).keys() == [f"key:{record.key_id}"]

    run(tmp_path / "s.sqlite3", body)


def test_a_running_app_sees_new_and_revoked_keys_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"

    async def main() -> None:
        async with SQLiteBackend(path) as app_side, SQLiteBackend(path) as admin_side:
            key, record = await create_key(admin_side, "a@example.com")
            assert await verify_key(app_side, key) == record
            assert await revoke_key(admin_side, record.key_id) is True
            assert await verify_key(app_side, key) is None

    asyncio.run(main())


def test_plaintext_key_never_reaches_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"

    async def body(backend: SQLiteBackend) -> list[str]:
        keys = [(await create_key(backend, f"user{n}@example.com"))[0] for n in range(5)]
        for key in keys:
            assert await verify_key(backend, key) is not None
        return keys

    keys = run(path, body)
    # Everything SQLite left on disk (main file, and -wal/-shm if any).
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.sqlite3"))
    assert b"user3@example.com" in data  # we are looking at the right bytes
    assert hashlib.sha256(keys[3].encode()).hexdigest().encode() in data  # the hash is stored
    for key in keys:
        secret = key.split("_", 2)[2]
        assert key.encode() not in data
        assert secret.encode() not in data
        assert secret[:16].encode() not in data


@pytest.mark.parametrize("email", ["", "   ", "no-at-sign", "a b@example.com"])
def test_bad_email_is_refused(tmp_path: Path, email: str) -> None:
    async def body(backend: SQLiteBackend) -> None:
        with pytest.raises(ValueError, match="email"):
            await create_key(backend, email)
        assert await list_keys(backend) == []

    run(tmp_path / "s.sqlite3", body)


# -- roles ----------------------------------------------------------------------------------


def test_a_key_has_the_role_it_was_made_with_and_write_by_default(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        reader_key, reader = await create_key(backend, "r@example.com", role="read")
        writer_key, writer = await create_key(backend, "w@example.com")
        assert (reader.role, writer.role) == ("read", "write")
        assert await verify_key(backend, reader_key) == reader
        assert await verify_key(backend, writer_key) == writer
        listed = {r.email: r.role for r in await list_keys(backend)}
        assert listed == {"r@example.com": "read", "w@example.com": "write"}
        stored = await backend.for_app(KEYS_APP).get(f"key:{reader.key_id}")
        assert stored["role"] == "read"

    run(tmp_path / "s.sqlite3", body)


@pytest.mark.parametrize("role", ["admin", "READ", "", None, 1])
def test_an_unknown_role_is_refused(tmp_path: Path, role: Any) -> None:
    async def body(backend: SQLiteBackend) -> None:
        with pytest.raises(ValueError, match="role must be one of read, write"):
            await create_key(backend, "a@example.com", role=role)
        assert await list_keys(backend) == []

    run(tmp_path / "s.sqlite3", body)


def test_a_record_from_before_roles_counts_as_write(tmp_path: Path) -> None:
    async def body(backend: SQLiteBackend) -> None:
        key, record = await create_key(backend, "old@example.com", role="read")
        store = backend.for_app(KEYS_APP)
        stored = await store.get(f"key:{record.key_id}")
        del stored["role"]  # as create_key wrote records before roles existed
        await store.set(f"key:{record.key_id}", stored)
        found = await verify_key(backend, key)
        assert found is not None and found.role == "write"
        assert [r.role for r in await list_keys(backend)] == ["write"]

    run(tmp_path / "s.sqlite3", body)


@pytest.mark.parametrize("damaged", ["admin", None, 7, ["read"]])
def test_a_record_with_a_damaged_role_lets_no_one_in(tmp_path: Path, damaged: Any) -> None:
    async def body(backend: SQLiteBackend) -> None:
        key, record = await create_key(backend, "x@example.com")
        store = backend.for_app(KEYS_APP)
        stored = await store.get(f"key:{record.key_id}")
        await store.set(f"key:{record.key_id}", {**stored, "role": damaged})
        assert await verify_key(backend, key) is None
        assert await list_keys(backend) == []

    run(tmp_path / "s.sqlite3", body)
