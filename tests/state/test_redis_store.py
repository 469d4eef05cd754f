"""What only the Redis backend has to get right, on a real ``redis-server``.

How keys are laid out (namespaces and apps kept apart, glob characters taken literally),
that Redis itself reclaims expired keys, and that an outage gives quick, clear errors (the
password never shown) and heals by itself once Redis is back. The behaviour shared with
SQLite is in ``test_contract.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from lolo_runtime.state import AppState, StateError
from lolo_runtime.state.redisstore import RedisBackend, redact_url
from tests.redis_support import RedisServer
from tests.support import free_port

T = TypeVar("T")

USER, PASSWORD = "lolo-user", "s3cret-pw"


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


def password_url(server: RedisServer) -> str:
    """A URL for ``server`` that logs in as a user with a password (made here by ACL)."""
    reply = server.command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    assert reply == "+OK", reply
    return f"redis://{USER}:{PASSWORD}@127.0.0.1:{server.port}/0"


async def every_call(state: AppState) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    """One of each AppState operation, as (name, zero-argument coroutine function)."""
    return [
        ("get", lambda: state.get("k")),
        ("set", lambda: state.set("k", {"v": 1})),
        ("set-ttl", lambda: state.set("k", 1, ttl=30)),
        ("delete", lambda: state.delete("k")),
        ("keys", lambda: state.keys()),
        ("keys-prefix", lambda: state.keys("k")),
        ("incr", lambda: state.incr("n")),
        ("push", lambda: state.push("l", "item", keep=10)),
    ]


# ----------------------------------------------------------------------------- layout


def test_namespaces_and_apps_are_isolated(redis_server: RedisServer) -> None:
    apps = ["a", "a:b", "a%3Ab", "a%b", "%", ":", "a:", ":b", "b", "*", "a%25", "é"]

    async def main() -> None:
        async with (
            RedisBackend(redis_server.url) as lolo,
            RedisBackend(redis_server.url, namespace="other") as other,
            RedisBackend(redis_server.url, namespace="lolo:a") as nested,
        ):
            for app in apps:
                state = lolo.for_app(app)
                await state.set("k", app)
                await state.set(f"b:{app}", app)
                await state.push("list", app, keep=5)
                assert await state.incr("n") == 1
            for app in apps:
                state = lolo.for_app(app)
                assert await state.keys() == sorted(["k", f"b:{app}", "list", "n"]), app
                assert await state.get("k") == app
                assert await state.get("list") == [app]
            # Another namespace on the same server sees none of it ...
            for app in apps:
                assert await other.for_app(app).keys() == []
                assert await other.for_app(app).get("k") is None
                assert await nested.for_app(app).keys() == []
            # ... and keeps its own, which the first namespace does not see.
            await other.for_app("a").set("k", "other's")
            await nested.for_app("b").set("k", "nested's")  # lolo:a + b vs app a, key b:...
            assert await lolo.for_app("a").get("k") == "a"
            assert await lolo.for_app("a").keys() == ["b:a", "k", "list", "n"]
            assert await lolo.for_app("a").get("b:k") is None
            assert await nested.for_app("b").keys() == ["k"]
            # Deleting in one app leaves the same key of every other app.
            assert await lolo.for_app("a:b").delete("k") is True
            for app in apps:
                if app != "a:b":
                    assert await lolo.for_app(app).get("k") == app, app

    run(main())


def test_glob_characters_in_keys_and_prefixes_are_literal(redis_server: RedisServer) -> None:
    keys = [
        "*",
        "a*",
        "a*b",
        "ab",
        "a?",
        "aX",
        "[a]",
        "a",
        "b",
        "\\",
        "\\*",
        "a\\b",
        "a[b]",
        "a[bc]",
        "ac",
        "?",
        "]",
        "[",
        "a]",
    ]

    async def main() -> None:
        async with RedisBackend(redis_server.url) as backend:
            for app in ("app", "ap*", "a?p", "[app]"):
                state = backend.for_app(app)
                for key in keys:
                    await state.set(key, key)
                assert await state.keys() == sorted(keys), app
                for key in keys:
                    assert await state.get(key) == key
                    expected = sorted(k for k in keys if k.startswith(key))
                    assert await state.keys(key) == expected, (app, key)
            # The apps with glob characters in their names match nothing of "app".
            await backend.for_app("app").set("only-app", 1)
            for app in ("ap*", "a?p", "[app]", "*", "?pp"):
                assert "only-app" not in await backend.for_app(app).keys(), app
            assert await backend.for_app("*").keys() == []

    run(main())


def test_keys_finds_more_keys_than_one_scan_batch(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisBackend(redis_server.url) as backend:
            state = backend.for_app("app")
            client = backend._require_open()
            async with client.pipeline(transaction=False) as pipe:
                for index in range(1500):
                    pipe.hset(f"lolo:app:k{index:04}", "v", str(index))
                await pipe.execute()
            await state.push("k-list", 1, keep=5)
            found = await state.keys("k")
            assert found == sorted([f"k{index:04}" for index in range(1500)] + ["k-list"])

    run(main())


def test_foreign_redis_keys_in_the_namespace_are_not_state(redis_server: RedisServer) -> None:
    """Keys written by hand under our names (other types, names that are not UTF-8 or not
    a valid key, items that are not JSON) are never listed, and never crash a call with
    anything but a StateError."""

    async def main() -> None:
        raw = aioredis.Redis.from_url(redis_server.url)  # bytes in, bytes out
        try:
            await raw.set(b"lolo:app:stray", b"plain string")
            await raw.hset(b"lolo:app:\xff\xfebad", b"v", b"1")
            await raw.rpush(b"lolo:app:", b"1")  # the empty key, which no app can use
            await raw.rpush(b"lolo:app:junk", b"\xff not json")
            await raw.hset(b"lolo:app:ok\xff", b"v", b"2")
        finally:
            await raw.aclose()
        async with RedisBackend(redis_server.url) as backend:
            state = backend.for_app("app")
            assert await state.keys() == ["junk"]
            assert await state.keys("ok") == []
            assert await state.get("stray") is None
            with pytest.raises(StateError, match="junk"):
                await state.get("junk")
            with pytest.raises(StateError, match="stray"):
                await state.push("stray", 1, keep=5)
            await state.set("stray", "mine")  # set replaces whatever was there
            assert await state.get("stray") == "mine"
            assert await state.delete("junk") is True
            assert await state.keys() == ["stray"]
            assert redis_server.command("EXISTS", "lolo:app:") == ":1"  # left alone

    run(main())


# ----------------------------------------------------------------------------- expiry


def test_redis_itself_drops_an_expired_key(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisBackend(redis_server.url) as backend:
            state = backend.for_app("app")
            await state.set("short", "lived", ttl=0.2)
            await state.set("kept", "forever")
            await state.set("long", "lived", ttl=3600)
            name = "lolo:app:short"
            assert redis_server.command("EXISTS", name) == ":1"
            pttl = int(redis_server.command("PTTL", name)[1:])
            assert 0 < pttl <= 1200  # the ttl plus one second of slack
            assert redis_server.command("TTL", "lolo:app:kept") == ":-1"
            assert 3600 <= int(redis_server.command("TTL", "lolo:app:long")[1:]) <= 3601
            await asyncio.sleep(0.3)
            assert await state.get("short") is None  # expired by our clock already
            assert await state.keys() == ["kept", "long"]
            await asyncio.sleep(1.2)
            assert redis_server.command("EXISTS", name) == ":0"  # and reclaimed by Redis
            assert redis_server.command("EXISTS", "lolo:app:kept") == ":1"
            # set without ttl after one with ttl: Redis must not drop it either.
            await state.set("again", 1, ttl=0.2)
            await state.set("again", 2)
            assert redis_server.command("TTL", "lolo:app:again") == ":-1"
            # incr keeps a live key's ttl; lists never expire.
            await state.set("hits", 1, ttl=0.2)
            assert await state.incr("hits") == 2
            assert int(redis_server.command("PTTL", "lolo:app:hits")[1:]) > 0
            await state.push("log", 1, keep=3)
            assert redis_server.command("TTL", "lolo:app:log") == ":-1"

    run(main())


# ----------------------------------------------------------------------------- outages


def test_an_outage_fails_fast_with_the_url_redacted_and_heals(
    redis_server: RedisServer,
) -> None:
    url = password_url(redis_server)
    shown = f"redis://{USER}:***@127.0.0.1:{redis_server.port}/0"

    async def main() -> None:
        async with RedisBackend(url) as backend:
            assert backend.location == shown
            assert PASSWORD not in repr(backend)
            state = backend.for_app("app")
            await state.set("k", "before")
            await state.push("l", "before", keep=10)
            calls = await every_call(state)

            redis_server.stop()
            for _ in range(2):  # and again: nothing gets stuck after the first failure
                for name, call in calls:
                    started = time.monotonic()
                    with pytest.raises(StateError) as info:
                        await call()
                    took = time.monotonic() - started
                    assert took < 3, f"{name} took {took:.1f} s"
                    message = str(info.value)
                    assert shown in message, (name, message)
                    assert PASSWORD not in message, (name, message)
                    what = {"keys": "prefix ''", "keys-prefix": "prefix 'k'"}.get(name, "key '")
                    assert what in message, (name, message)

            # Back on the same port (empty: no persistence), with the user made again: the
            # same backend works without being reopened.
            redis_server.start()
            password_url(redis_server)
            for _name, call in calls:
                await call()
            assert await state.get("k") is None  # set, then deleted, by the calls above
            assert await state.get("l") == ["item"]
            assert await state.incr("n") == 2
            assert await state.keys() == ["l", "n"]

    run(main())


def test_calls_after_a_restart_work_on_every_pooled_connection(
    redis_server: RedisServer,
) -> None:
    """Many connections in the pool go stale at once; none of them may leak an error."""

    async def main() -> None:
        async with RedisBackend(redis_server.url) as backend:
            state = backend.for_app("app")
            await asyncio.gather(*(state.incr("n") for _ in range(50)))  # fill the pool
            redis_server.stop()
            redis_server.start()
            results = await asyncio.gather(
                *(state.incr("n") for _ in range(50)), return_exceptions=True
            )
            assert sorted(results) == list(range(1, 51))  # type: ignore[type-var]

    run(main())


def test_writes_refused_by_redis_are_clear_errors(redis_server: RedisServer) -> None:
    """Redis out of memory (maxmemory, no eviction) refuses writes: each is a StateError
    naming the key and the reason, not a false claim about the value; reads go on."""

    async def main() -> None:
        async with RedisBackend(redis_server.url) as backend:
            state = backend.for_app("app")
            await state.set("n", 5)
            await state.push("l", 1, keep=3)
            assert redis_server.command("CONFIG", "SET", "maxmemory", "1") == "+OK"
            try:
                for key, call in [
                    ("n", state.incr("n")),
                    ("fresh", state.incr("fresh")),
                    ("n", state.set("n", 6)),
                    ("l", state.push("l", 2, keep=3)),
                    ("n", state.set("n", 7, ttl=10)),
                ]:
                    with pytest.raises(StateError) as info:
                        await call
                    message = str(info.value)
                    assert f"key {key!r}" in message, message
                    assert "maxmemory" in message, message
                    assert "not an int" not in message, message
                assert await state.get("n") == 5
                assert await state.get("l") == [1]
                assert await state.keys() == ["l", "n"]
            finally:
                redis_server.command("CONFIG", "SET", "maxmemory", "0")
            assert await state.incr("n") == 6
            assert await state.push("l", 2, keep=3) == 2

    run(main())


def test_a_frozen_server_does_not_hang_calls(redis_server: RedisServer) -> None:
    """A Redis that accepts connections but never answers (here: SIGSTOP) costs each call
    at most a couple of timeouts, not forever."""
    assert redis_server.process is not None
    pid = redis_server.process.pid

    async def main() -> None:
        async with RedisBackend(redis_server.url, timeout=0.5) as backend:
            state = backend.for_app("app")
            await state.set("k", 1)
            calls = await every_call(state)
            os.kill(pid, signal.SIGSTOP)
            try:
                for name, call in calls:
                    started = time.monotonic()
                    with pytest.raises(StateError, match=f"127.0.0.1:{redis_server.port}"):
                        await call()
                    took = time.monotonic() - started
                    assert took < 3, f"{name} took {took:.1f} s"
            finally:
                os.kill(pid, signal.SIGCONT)
            # Answers again once thawed (what became of the calls that timed out is unknown:
            # Redis may still run the commands it had received).
            await state.set("after", "thaw")
            assert await state.get("after") == "thaw"

    run(main())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:{pw}@127.0.0.1:{port}/0", "redis://:***@127.0.0.1:{port}/0"),
        ("redis://127.0.0.1:{port}/0?password={pw}", "redis://127.0.0.1:{port}/0?password=***"),
    ],
)
def test_open_against_a_closed_port_names_the_url(url: str, shown: str) -> None:
    port = free_port()
    backend = RedisBackend(url.format(pw=PASSWORD, port=port))
    started = time.monotonic()
    with pytest.raises(StateError) as info:
        run(backend.open())
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert shown.format(port=port) in message
    assert PASSWORD not in message
    with pytest.raises(StateError, match="not open"):
        run(backend.for_app("app").get("k"))
    run(backend.close())  # closing a backend that never opened is fine


def test_open_with_a_wrong_password_names_the_url_not_the_password(
    redis_server: RedisServer,
) -> None:
    password_url(redis_server)
    url = f"redis://{USER}:wrong-{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(StateError) as info:
        run(RedisBackend(url).open())
    message = str(info.value)
    assert f"redis://{USER}:***@127.0.0.1:{redis_server.port}/0" in message
    assert PASSWORD not in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:notaport/0", "not a url at all", ""]
)
def test_open_with_an_unusable_url_is_a_state_error(url: str) -> None:
    with pytest.raises(StateError):
        run(RedisBackend(url).open())


# ----------------------------------------------------------------------------- redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw@host:6379/2", "redis://user:***@host:6379/2"),
        ("rediss://user:p%40ss@cache.example.com:6380", "rediss://user:***@cache.example.com:6380"),
        ("redis://:pw@host/0", "redis://:***@host/0"),
        ("redis://:p@ss:w:rd@host:1/0", "redis://:***@host:1/0"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:pw@MyHost.Example:6379/0", "redis://:***@MyHost.Example:6379/0"),
        ("unix://:pw@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        ("redis://host:6379/0?password=pw", "redis://host:6379/0?password=***"),
        ("redis://host/0?db=1&password=pw&timeout=2", "redis://host/0?db=1&password=***&timeout=2"),
    ],
)
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://host:6379/0",
        "redis://user@host:6379/0",
        "redis://localhost",
        "unix:///run/redis.sock?db=2",
        "",
    ],
)
def test_redact_url_leaves_a_url_without_password_alone(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pw@[::1",
        "redis://:pw@host:99999/0",
        "redis://:pw@host:port/0",
        "::::",
        "redis://:pw@",
        "\x00redis://:pw@host",
        "redis://:pw@ho st:1/0",
    ],
)
def test_redact_url_never_raises_nor_shows_the_password(url: str) -> None:
    shown = redact_url(url)
    assert isinstance(shown, str)
    assert "pw" not in shown
