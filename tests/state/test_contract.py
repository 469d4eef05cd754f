"""The behaviour every state backend must have (what handlers rely on as ``ctx.state``).

Each test runs once per backend named in ``BACKENDS``: SQLite in a temporary file, and Redis
on a real ``redis-server`` started for the test (skipped, naming the Debian package, when the
program is missing; failing under ``CI=true``). To check a new backend, add its name there and
teach the ``open_backend`` fixture how to open a fresh, empty store.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lolo_runtime.state import SQLiteBackend, StateBackend, StateError
from lolo_runtime.state.redisstore import RedisBackend

T = TypeVar("T")

BACKENDS = ["sqlite", "redis"]


class FakeClock:
    """A clock the test moves by hand, so ttl expiry needs no sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


OpenBackend = Callable[[FakeClock], AbstractAsyncContextManager[StateBackend]]


@pytest.fixture(params=BACKENDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> OpenBackend:
    """Return ``opener(clock)``: an async context manager giving an open, empty backend."""
    name = request.param

    @asynccontextmanager
    async def opener(clock: FakeClock) -> AsyncIterator[StateBackend]:
        if name == "sqlite":
            backend: StateBackend = SQLiteBackend(tmp_path / "state.sqlite3", clock=clock)
        elif name == "redis":
            server = request.getfixturevalue("redis_server")
            backend = RedisBackend(server.url, clock=clock)
        else:  # pragma: no cover - only reached when a backend is listed but not wired up
            raise AssertionError(f"unknown backend {name}")
        async with backend:
            yield backend

    return opener


def run(open_backend: OpenBackend, body: Callable[[StateBackend, FakeClock], Awaitable[T]]) -> T:
    """Run ``body(backend, clock)`` in a fresh event loop with a freshly opened backend."""

    async def main() -> T:
        clock = FakeClock()
        async with open_backend(clock) as backend:
            return await body(backend, clock)

    return asyncio.run(main())


JSON_VALUES: list[Any] = [
    True,
    False,
    0,
    -7,
    2**80,
    1.0,
    3.25,
    -0.0,
    1e308,
    5e-324,
    "",
    "plain",
    'unicode: héllo ✓ 🎉 \u0000 \n "quoted" \\',
    [],
    {},
    [1, "a", None, True, 2.5, [], {}],
    {"a": {"b": [1, 2, {"c": None}]}, "": 0, "x y": [[[]]]},
    {"n": None},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=lambda v: type(v).__name__ + ":" + repr(v)[:20])
def test_every_json_value_round_trips(open_backend: OpenBackend, value: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> Any:
        state = backend.for_app("app")
        await state.set("key", value)
        return await state.get("key")

    got = run(open_backend, body)
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, value)


def test_get_returns_a_copy(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("doc", {"items": [1, 2]})
        first = await state.get("doc")
        first["items"].append(3)
        assert await state.get("doc") == {"items": [1, 2]}

    run(open_backend, body)


def test_get_default_and_falsy_values(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        assert await state.get("missing") is None
        assert await state.get("missing", "fallback") == "fallback"
        for index, falsy in enumerate([0, "", False, [], {}, 0.0]):
            await state.set(f"falsy{index}", falsy)
            assert await state.get(f"falsy{index}", "fallback") == falsy

    run(open_backend, body)


def test_overwrite_and_delete(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("k", 1)
        await state.set("k", ["two"])
        assert await state.get("k") == ["two"]
        assert await state.delete("k") is True
        assert await state.delete("k") is False
        assert await state.get("k", "gone") == "gone"
        assert await state.delete("never-set") is False

    run(open_backend, body)


def test_set_none_deletes(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("k", "v")
        await state.set("k", None)
        assert await state.get("k", "gone") == "gone"
        assert await state.keys() == []
        await state.set("never-set", None)  # deleting nothing is fine
        assert await state.keys() == []

    run(open_backend, body)


def test_keys_sorted_and_filtered_by_exact_prefix(open_backend: OpenBackend) -> None:
    names = ["user:2", "user:10", "user:1", "a%b", "a_b", "axb", "ab", "a", "é", "z"]

    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        for name in names:
            await state.set(name, 1)
        assert await state.keys() == sorted(names)
        assert await state.keys("") == sorted(names)
        assert await state.keys("user:") == ["user:1", "user:10", "user:2"]
        assert await state.keys("user:1") == ["user:1", "user:10"]
        # % and _ are literal characters, not wildcards.
        assert await state.keys("a%") == ["a%b"]
        assert await state.keys("a_") == ["a_b"]
        assert await state.keys("a") == ["a", "a%b", "a_b", "ab", "axb"]
        assert await state.keys("nothing") == []

    run(open_backend, body)


def test_incr_is_atomic_under_100_concurrent_tasks(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> tuple[list[int], int]:
        state = backend.for_app("app")

        async def task() -> list[int]:
            return [await state.incr("counter") for _ in range(10)]

        results = await asyncio.gather(*(task() for _ in range(100)))
        return [value for chunk in results for value in chunk], await state.get("counter")

    seen, final = run(open_backend, body)
    assert final == 1000
    assert sorted(seen) == list(range(1, 1001))  # every increment saw a distinct value


def test_incr_missing_key_and_step(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        assert await state.incr("a") == 1
        assert await state.incr("b", 5) == 5
        assert await state.incr("b", -7) == -2
        assert await state.incr("big", 2**63 - 1) == 2**63 - 1
        assert await state.incr("small", -(2**63)) == -(2**63)
        assert await state.get("b") == -2
        await state.set("n", 41)
        assert await state.incr("n") == 42

    run(open_backend, body)


@pytest.mark.parametrize("stored", ["5", 1.5, True, [1], {"a": 1}])
def test_incr_on_non_integer_is_a_clear_error(open_backend: OpenBackend, stored: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("thing", stored)
        with pytest.raises(StateError, match=r"thing.*" + type(stored).__name__):
            await state.incr("thing")
        assert await state.get("thing") == stored  # unchanged
        assert await state.incr("other") == 1  # the store still works

    run(open_backend, body)


def test_incr_stays_within_64_bits(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("top", 2**63 - 1)
        await state.set("huge", 2**70)  # storing big ints is fine; counting with them is not
        for key, by in [("top", 1), ("huge", 1), ("fresh", 2**63), ("fresh", -(2**63) - 1)]:
            with pytest.raises(StateError, match=key):
                await state.incr(key, by)
        for key in ("top", "huge"):  # said as such (not as "it holds an int, not an int")
            with pytest.raises(StateError, match=f"{key}.*overflow"):
                await state.incr(key, 1)
        await state.set("negative", -(2**63))
        with pytest.raises(StateError, match=r"negative.*overflow"):
            await state.incr("negative", -1)
        assert await state.get("negative") == -(2**63)
        assert await state.get("top") == 2**63 - 1
        assert await state.get("huge") == 2**70
        assert await state.get("fresh") is None
        assert await state.incr("top", -1) == 2**63 - 2

    run(open_backend, body)


@pytest.mark.parametrize("by", [1.5, True, "1", None])
def test_incr_step_must_be_an_int(open_backend: OpenBackend, by: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        with pytest.raises(StateError, match="counter"):
            await state.incr("counter", by)
        assert await state.get("counter") is None

    run(open_backend, body)


def test_ttl_expiry_with_injected_clock(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("session", {"user": 1}, ttl=10)
        await state.set("forever", 1)
        clock.advance(9.5)
        assert await state.get("session") == {"user": 1}
        assert await state.keys() == ["forever", "session"]
        clock.advance(0.5)  # exactly at the deadline: expired
        assert await state.get("session", "expired") == "expired"
        assert await state.keys() == ["forever"]
        assert await state.delete("session") is False
        clock.advance(1e6)
        assert await state.get("forever") == 1

    run(open_backend, body)


def test_incr_on_expired_key_starts_at_zero_without_ttl(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("hits", 100, ttl=5)
        assert await state.incr("hits") == 101  # live key: keeps its value ...
        clock.advance(6)
        assert await state.get("hits") is None  # ... and its ttl
        assert await state.incr("hits") == 1  # expired: starts from 0
        clock.advance(1e6)
        assert await state.get("hits") == 1  # and has no ttl any more

    run(open_backend, body)


def test_set_without_ttl_removes_the_old_ttl(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("k", 1, ttl=1)
        await state.set("k", 2)
        clock.advance(10)
        assert await state.get("k") == 2
        await state.set("k", 3, ttl=1)  # and a new ttl replaces "no ttl"
        clock.advance(2)
        assert await state.get("k") is None

    run(open_backend, body)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True])
def test_bad_ttl_is_rejected(open_backend: OpenBackend, ttl: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        with pytest.raises(StateError, match="ttl"):
            await state.set("k", 1, ttl=ttl)
        assert await state.get("k") is None

    run(open_backend, body)


def test_apps_are_isolated(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        first, second = backend.for_app("first"), backend.for_app("second")
        await first.set("shared-name", "first's")
        await first.set("only-first", 1)
        assert await second.get("shared-name") is None
        assert await second.keys("") == []
        assert await second.delete("only-first") is False
        assert await second.incr("shared-name") == 1
        await second.set("only-first", None)
        assert await first.get("shared-name") == "first's"
        assert await first.get("only-first") == 1
        assert await first.keys() == ["only-first", "shared-name"]
        assert await second.keys() == ["shared-name"]
        # Names that would collide if app and key were simply concatenated.
        await backend.for_app("a").set(":b", "app a")
        await backend.for_app("a:").set("b", "app a:")
        assert await backend.for_app("a").keys() == [":b"]
        assert await backend.for_app("a:").keys() == ["b"]
        assert await backend.for_app("a").get(":b") == "app a"

    run(open_backend, body)


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (b"bytes", "bytes"),
        ({1, 2}, "set"),
        (Opaque(), "Opaque"),
        (float("nan"), "nan"),
        (float("-inf"), "inf"),
        ({1: "int key"}, "int"),
        ((1, 2), "tuple"),
        ([1, {"deep": [b"x"]}], "bytes"),
        ({"when": 1j}, "complex"),
    ],
)
def test_non_json_value_is_a_clear_error(
    open_backend: OpenBackend, value: Any, type_name: str
) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("my-key", "before")
        with pytest.raises(StateError) as info:
            await state.set("my-key", value)
        assert "my-key" in str(info.value)
        assert type_name in str(info.value)
        assert await state.get("my-key") == "before"

    run(open_backend, body)


def test_circular_value_is_a_clear_error(open_backend: OpenBackend) -> None:
    loop_list: list[Any] = []
    loop_list.append(loop_list)

    async def body(backend: StateBackend, clock: FakeClock) -> None:
        with pytest.raises(StateError, match="circ"):
            await backend.for_app("app").set("cycle", loop_list)

    run(open_backend, body)


@pytest.mark.parametrize("key", ["", 1, None, b"key", ("a",)])
def test_bad_keys_are_rejected(open_backend: OpenBackend, key: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        for call in (state.get(key), state.set(key, 1), state.delete(key), state.incr(key)):
            with pytest.raises(StateError, match="key"):
                await call
        assert await state.keys() == []

    run(open_backend, body)


def test_unusual_but_valid_keys(open_backend: OpenBackend) -> None:
    keys = ["with space", "üñíçødé", "🎉", "line\nbreak", "'quote\"", "a" * 2000]

    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        for index, key in enumerate(keys):
            await state.set(key, index)
        for index, key in enumerate(keys):
            assert await state.get(key) == index
        assert await state.keys() == sorted(keys)

    run(open_backend, body)


def test_closed_backend_raises_state_error(open_backend: OpenBackend) -> None:
    async def main() -> None:
        async with open_backend(FakeClock()) as backend:
            state = backend.for_app("app")
            await state.set("k", 1)
        with pytest.raises(StateError, match="not open"):
            await state.get("k")

    asyncio.run(main())


# ----------------------------------------------------------------------------- push


def test_push_appends_in_order_and_get_reads_oldest_first(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        items: list[Any] = ["first", 2, {"three": [3]}, None, [], 4.5, True]
        for index, item in enumerate(items, start=1):
            assert await state.push("log", item, keep=100) == index
        assert await state.get("log") == items
        copy = await state.get("log")
        copy.append("not stored")
        assert await state.get("log") == items  # get gives a copy
        assert await state.get("other", "default") == "default"

    run(open_backend, body)


def test_push_keeps_the_last_n_and_numbers_the_items(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        numbers = [await state.push("recent", number, keep=3) for number in range(1, 8)]
        assert numbers == [1, 2, 3, 4, 5, 6, 7]  # the item's number, trims or not
        assert await state.get("recent") == [5, 6, 7]
        # A smaller keep trims the existing list at once; a larger one lets it grow again.
        assert await state.push("recent", 8, keep=1) == 8
        assert await state.get("recent") == [8]
        assert await state.push("recent", 9, keep=5) == 9
        assert await state.push("recent", 10, keep=5) == 10
        assert await state.get("recent") == [8, 9, 10]
        assert await state.push("one", "x", keep=1) == 1
        assert await state.push("one", "y", keep=1) == 2
        assert await state.get("one") == ["y"]
        # A list made anew (after delete or set) counts from 1 again.
        assert await state.delete("one")
        assert await state.push("one", "z", keep=1) == 1
        await state.set("recent", "plain")
        await state.delete("recent")
        assert await state.push("recent", 11, keep=3) == 1

    run(open_backend, body)


@pytest.mark.parametrize("keep", [0, -1, True, False, 1.5, "3", None, 2.0])
def test_push_keep_must_be_a_positive_int(open_backend: OpenBackend, keep: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        with pytest.raises(StateError, match=r"keep.*list-key|list-key.*keep"):
            await state.push("list-key", 1, keep=keep)
        assert await state.get("list-key") is None
        assert await state.keys() == []
        await state.push("list-key", 1, keep=2)
        with pytest.raises(StateError, match="keep"):
            await state.push("list-key", 2, keep=keep)
        assert await state.get("list-key") == [1]  # a refused push changes nothing

    run(open_backend, body)


@pytest.mark.parametrize(
    "value",
    [b"bytes", {1, 2}, Opaque(), float("nan"), (1, 2), {1: "x"}],
    ids=["bytes", "set", "Opaque", "nan", "tuple", "int-key"],
)
def test_push_non_json_value_is_refused_and_nothing_stored(
    open_backend: OpenBackend, value: Any
) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        with pytest.raises(StateError, match="events"):
            await state.push("events", value, keep=10)
        assert await state.get("events") is None
        assert await state.keys() == []
        await state.push("events", "ok", keep=10)
        with pytest.raises(StateError, match="events"):
            await state.push("events", [1, value], keep=10)
        assert await state.get("events") == ["ok"]

    run(open_backend, body)


def test_push_to_a_set_value_is_refused(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        for key, value, ttl in [
            ("plain", [1, 2], None),
            ("counter", 5, None),
            ("session", {"user": 1}, 60.0),
        ]:
            await state.set(key, value, ttl=ttl)
            with pytest.raises(StateError, match=key):
                await state.push(key, "item", keep=10)
            assert await state.get(key) == value  # unchanged
        clock.advance(59)
        assert await state.get("session") == {"user": 1}  # ttl untouched by the refusal
        clock.advance(1)
        assert await state.get("session") is None

    run(open_backend, body)


def test_push_to_an_expired_value_starts_a_fresh_list(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("feed", "old", ttl=5)
        clock.advance(5)  # exactly at the deadline: expired
        assert await state.push("feed", "new", keep=10) == 1
        assert await state.get("feed") == ["new"]
        clock.advance(1e6)  # lists never expire (and the old ttl does not linger)
        assert await state.get("feed") == ["new"]
        assert await state.keys() == ["feed"]
        assert await state.push("feed", "newer", keep=10) == 2

    run(open_backend, body)


def test_set_over_a_list_replaces_it(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.push("k", 1, keep=10)
        await state.push("k", 2, keep=10)
        await state.set("k", {"now": "a dict"})
        assert await state.get("k") == {"now": "a dict"}
        with pytest.raises(StateError, match="k"):
            await state.push("k", 3, keep=10)  # it is a set() value now
        await state.delete("k")
        await state.push("k", 4, keep=10)
        await state.set("k", [9, 9], ttl=10)
        assert await state.get("k") == [9, 9]
        clock.advance(10)
        assert await state.get("k") is None  # the set() value's ttl applies; no list behind it
        assert await state.push("k", 5, keep=10) == 1
        assert await state.get("k") == [5]
        await state.set("k", None)  # set(None) deletes a list too
        assert await state.get("k") is None
        assert await state.keys() == []

    run(open_backend, body)


def test_delete_removes_a_list(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.push("list", "a", keep=10)
        await state.push("list", "b", keep=10)
        assert await state.delete("list") is True
        assert await state.get("list") is None
        assert await state.delete("list") is False
        assert await state.keys() == []
        assert await state.push("list", "c", keep=10) == 1  # a fresh list
        assert await state.get("list") == ["c"]

    run(open_backend, body)


def test_keys_lists_list_keys_with_prefix(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.push("log:b", 1, keep=5)
        await state.push("log:a", 1, keep=5)
        await state.push("log:a", 2, keep=5)  # listed once, however long
        await state.set("log:c", "value")
        await state.set("logx", "value")
        await state.push("zz", 1, keep=5)
        await state.push("log%", 1, keep=5)
        assert await state.keys() == ["log%", "log:a", "log:b", "log:c", "logx", "zz"]
        assert await state.keys("log:") == ["log:a", "log:b", "log:c"]
        assert await state.keys("log:a") == ["log:a"]
        assert await state.keys("log_") == []
        assert await state.keys("z") == ["zz"]
        assert await backend.for_app("other").keys() == []
        assert await backend.for_app("other").get("log:a") is None

    run(open_backend, body)


def test_lists_are_per_app(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        first, second = backend.for_app("first"), backend.for_app("second")
        await first.push("log", "first's", keep=5)
        await second.set("log", "second's value")
        assert await second.push("other", 1, keep=5) == 1
        assert await first.push("log", "again", keep=5) == 2
        assert await first.get("log") == ["first's", "again"]
        assert await second.get("log") == "second's value"
        assert await second.delete("log") is True
        assert await first.get("log") == ["first's", "again"]

    run(open_backend, body)


def test_incr_on_a_list_is_refused(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.push("events", 1, keep=10)
        with pytest.raises(StateError, match=r"events.*list"):
            await state.incr("events")
        assert await state.get("events") == [1]
        assert await state.push("events", 2, keep=10) == 2

    run(open_backend, body)


def test_push_is_atomic_under_100_concurrent_tasks(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> tuple[list[int], Any]:
        state = backend.for_app("app")
        lengths = await asyncio.gather(
            *(state.push("crowd", number, keep=1000) for number in range(100))
        )
        return list(lengths), await state.get("crowd")

    numbers, final = run(open_backend, body)
    assert sorted(numbers) == list(range(1, 101))  # each push got its own number
    assert sorted(final) == list(range(100))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_push_from_two_connections_keeps_each_pushers_order(
    request: pytest.FixtureRequest, tmp_path: Path, backend_name: str
) -> None:
    """Two backend objects (two SQLite connections; two Redis clients) on one store."""

    def make() -> StateBackend:
        if backend_name == "sqlite":
            return SQLiteBackend(tmp_path / "shared.sqlite3")
        return RedisBackend(request.getfixturevalue("redis_server").url)

    async def pusher(backend: StateBackend, name: str, count: int) -> list[int]:
        state = backend.for_app("app")
        return [await state.push("shared", f"{name}{index}", keep=50) for index in range(count)]

    async def main() -> tuple[list[int], Any]:
        async with make() as one, make() as two:
            results = await asyncio.gather(
                pusher(one, "a", 200), pusher(two, "b", 200), pusher(one, "c", 100)
            )
            final = await two.for_app("app").get("shared")
            assert final == await one.for_app("app").get("shared")
            return [length for chunk in results for length in chunk], final

    numbers, final = asyncio.run(main())
    assert sorted(numbers) == list(range(1, 501))  # numbered once each, across connections
    assert len(final) == 50
    assert len(set(final)) == 50
    for name in "abc":
        mine = [int(item[1:]) for item in final if item[0] == name]
        assert mine == sorted(mine), f"{name}'s items out of order: {mine}"
        if mine:  # what survives of a pusher is its newest items, consecutive
            assert mine == list(range(mine[0], mine[0] + len(mine)))
    # The very last push (whoever made it) is the newest item.
    assert final[-1] in {"a199", "b199", "c99"}


@pytest.mark.parametrize("ttl", [1e-6, 10**7, 2**70, 1e300, 1.7976931348623157e308])
def test_any_positive_finite_ttl_is_accepted(open_backend: OpenBackend, ttl: float) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("k", "v", ttl=ttl)
        if ttl < 1:
            clock.advance(ttl)
            assert await state.get("k") is None
            return
        assert await state.get("k") == "v"
        assert await state.incr("n") == 1
        clock.advance(ttl / 2)
        assert await state.get("k") == "v"
        assert await state.keys() == ["k", "n"]

    run(open_backend, body)


def test_refused_pushes_among_concurrent_ones_leave_the_others_alone(
    open_backend: OpenBackend,
) -> None:
    """Operations run together (SQLite commits them in one transaction): a refused push
    changes nothing and fails only itself."""

    async def body(backend: StateBackend, clock: FakeClock) -> tuple[list[Any], Any, Any]:
        state = backend.for_app("app")
        await state.set("taken", "a set() value")
        calls = []
        for number in range(60):
            if number % 3 == 0:
                calls.append(state.push("taken", number, keep=100))
            elif number % 3 == 1:
                calls.append(state.push("good", number, keep=100))
            else:
                calls.append(state.incr("good"))
        results = await asyncio.gather(*calls, return_exceptions=True)
        return results, await state.get("good"), await state.get("taken")

    results, good, taken = run(open_backend, body)
    assert taken == "a set() value"
    assert sorted(good) == list(range(1, 60, 3))  # (concurrent: in no promised order)
    for number, result in enumerate(results):
        if number % 3 == 1:
            assert isinstance(result, int)
        else:
            assert isinstance(result, StateError), result
            assert ("taken" if number % 3 == 0 else "list") in str(result)


def test_push_of_several_values_appends_them_in_order_at_once(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        assert await state.push("log", "a", keep=10) == 1
        assert await state.push("log", "b", "c", {"d": [4]}, keep=10) == 4  # the last's number
        assert await state.get("log") == ["a", "b", "c", {"d": [4]}]
        # More than keep in one push: only the newest stay, numbers count on.
        assert await state.push("log", *range(12), keep=5) == 16
        assert await state.get("log") == [7, 8, 9, 10, 11]
        # One bad value refuses the whole push.
        with pytest.raises(StateError, match="not JSON"):
            await state.push("log", 1, {2}, 3, keep=5)
        assert await state.get("log") == [7, 8, 9, 10, 11]
        # The most values at once, and one too many.
        assert await state.push("big", *range(1000), keep=2000) == 1000
        with pytest.raises(StateError, match="at most 1000"):
            await state.push("big", *range(1001), keep=2000)
        assert len(await state.get("big")) == 1000

    run(open_backend, body)


def test_concurrent_multi_value_pushes_stay_whole(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> Any:
        state = backend.for_app("app")
        await asyncio.gather(
            *(
                state.push("runs", *[f"{who}{i}" for i in range(5)], keep=1000)
                for who in "abcdefghij"
            )
        )
        return await state.get("runs")

    final = run(open_backend, body)
    assert len(final) == 50
    for start in range(0, 50, 5):  # each push's five values sit together, in order
        run_of_five = final[start : start + 5]
        who = run_of_five[0][0]
        assert run_of_five == [f"{who}{i}" for i in range(5)]


# claim(): a lease, "set if absent or expired", atomic across processes.


def test_claim_is_won_once_until_it_expires(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        assert await state.claim("lease", 10, {"by": "first"}) is True
        assert await state.claim("lease", 10, {"by": "second"}) is False
        assert await state.get("lease") == {"by": "first"}  # the loser changed nothing
        assert await state.keys() == ["lease"]
        clock.advance(9.9)
        assert await state.claim("lease", 10, {"by": "third"}) is False
        clock.advance(0.1)  # expired: the next claim takes it over, with a fresh ttl
        assert await state.claim("lease", 10, {"by": "fourth"}) is True
        assert await state.get("lease") == {"by": "fourth"}
        clock.advance(9.9)
        assert await state.get("lease") == {"by": "fourth"}
        clock.advance(0.1)
        assert await state.get("lease") is None
        assert await state.keys() == []

    run(open_backend, body)


def test_claim_after_delete_and_default_value(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        assert await state.claim("lease", 60) is True
        assert await state.get("lease") is True
        assert await state.delete("lease") is True  # a holder gives its lease back
        assert await state.claim("lease", 60) is True
        assert await backend.for_app("other").claim("lease", 60) is True  # apps apart

    run(open_backend, body)


def test_claim_never_takes_a_live_value_or_list(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        await state.set("kept", "mine")
        await state.set("brief", "mine", ttl=5)
        await state.push("list", 1, keep=5)
        assert await state.claim("kept", 60) is False
        assert await state.claim("brief", 60) is False
        assert await state.claim("list", 60) is False
        assert await state.get("kept") == "mine"
        assert await state.get("list") == [1]
        clock.advance(5)
        assert await state.claim("brief", 60, "lease") is True
        assert await state.get("brief") == "lease"
        await state.set("brief", "plain")  # set() replaces a lease like any value
        clock.advance(3600)
        assert await state.get("brief") == "plain"
        assert await state.push("list", 2, keep=5) == 2

    run(open_backend, body)


@pytest.mark.parametrize("ttl", [None, 0, -1, math.inf, math.nan, "5", True])
def test_claim_needs_a_positive_ttl(open_backend: OpenBackend, ttl: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        with pytest.raises(StateError, match="ttl"):
            await state.claim("lease", ttl)
        assert await state.keys() == []

    run(open_backend, body)


@pytest.mark.parametrize("value", [None, {1, 2}, b"bytes"], ids=["None", "set", "bytes"])
def test_claim_value_must_be_json_and_not_none(open_backend: OpenBackend, value: Any) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        with pytest.raises(StateError, match="'lease'"):
            await state.claim("lease", 10, value)
        assert await state.keys() == []

    run(open_backend, body)


def test_release_gives_back_only_the_callers_own_lease(open_backend: OpenBackend) -> None:
    async def body(backend: StateBackend, clock: FakeClock) -> None:
        state = backend.for_app("app")
        mine, theirs = {"by": "me", "tick": 1}, {"by": "them", "tick": 2}
        assert await state.claim("lease", 10, mine) is True
        assert await state.release("lease", theirs) is False  # not theirs to give back
        assert await state.get("lease") == mine
        assert await state.release("lease", mine) is True
        assert await state.get("lease") is None
        assert await state.release("lease", mine) is False  # gone already
        # Mine lapsed and they took it over: my late release must not free their lease.
        assert await state.claim("lease", 10, mine) is True
        clock.advance(10)
        assert await state.claim("lease", 10, theirs) is True
        assert await state.release("lease", mine) is False
        assert await state.get("lease") == theirs
        # A lapsed lease of mine is not live: nothing to release.
        clock.advance(10)
        assert await state.release("lease", theirs) is False
        # A plain value equal to the lease, or a list, is released only as that value.
        await state.set("plain", True)
        assert await state.release("plain") is True
        await state.push("list", True, keep=3)
        assert await state.release("list") is False
        assert await state.get("list") == [True]
        assert await backend.for_app("other").release("lease", theirs) is False  # apps apart

    run(open_backend, body)


def test_one_claim_wins_among_racers_on_two_connections(open_backend: OpenBackend) -> None:
    """Two backends on one store stand for two processes: of 40 concurrent claims of a
    key, exactly one wins, whichever connection it came by (20 keys, one after another)."""

    async def main() -> list[list[bool]]:
        clock = FakeClock()
        async with open_backend(clock) as one, open_backend(clock) as two:
            states = [one.for_app("app"), two.for_app("app")]
            outcomes = []
            for n in range(20):
                racers = (states[i % 2].claim(f"tick:{n}", 30, i) for i in range(40))
                outcomes.append(list(await asyncio.gather(*racers)))
            return outcomes

    for outcomes in asyncio.run(main()):
        assert outcomes.count(True) == 1
