"""A :class:`StateBackend` on a Redis server, shared by every process of an app.

Layout, under ``<namespace>:<app>:<key>`` (namespace and app percent-encoded):

* a value stored with ``set`` is a hash ``{v: <JSON text>, e: <expiry, unix seconds>}``
  (``e`` only when it has a ttl). Expiry is judged against the caller's clock, as on
  SQLite; Redis also drops the key a second after it lapses, to reclaim memory;
* a list made by ``push`` is a Redis list of JSON texts (RPUSH and LTRIM, one item a push);
* a lease taken by ``claim`` is a value like any other (a hash with its expiry).

Every operation that must look at a key's type or expiry and then change it is one Lua
script, so it is atomic across processes. ``incr`` is ``HINCRBY`` (exact signed 64-bit
arithmetic in Redis, overflow refused). Values are JSON text, never pickle.

Calls fail fast when Redis is away: the connection and each reply are bounded by
``timeout`` seconds and a failed call is retried once (a pooled connection may be stale after
a Redis restart); the caller gets a :class:`StateError` naming the server, password hidden.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from .base import Clock, StateBackend, StateError, validate_key

__all__ = ["RedisBackend", "connect_redis", "redact_url"]

T = TypeVar("T")

_GET = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'hash' then
  local r = redis.call('HMGET', KEYS[1], 'v', 'e')
  if r[2] and tonumber(r[2]) <= tonumber(ARGV[1]) then return false end
  return {'v', r[1]}
elseif t == 'list' then
  return {'l', redis.call('LRANGE', KEYS[1], 0, -1)}
end
return false
"""

_DELETE = """
local t = redis.call('TYPE', KEYS[1])['ok']
local live = 0
if t == 'list' then live = 1
elseif t == 'hash' then
  local e = redis.call('HGET', KEYS[1], 'e')
  if not e or tonumber(e) > tonumber(ARGV[1]) then live = 1 end
end
redis.call('DEL', KEYS[1], KEYS[2])
return live
"""

_LIVE_KEYS = """
local now = tonumber(ARGV[1])
local live = {}
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)['ok']
  if t == 'list' then live[#live + 1] = k
  elseif t == 'hash' then
    local e = redis.call('HGET', k, 'e')
    if not e or tonumber(e) > now then live[#live + 1] = k end
  end
end
return live
"""

_INCR = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'list' then return redis.error_reply('LOLOLIST') end
if t == 'hash' then
  local e = redis.call('HGET', KEYS[1], 'e')
  if e and tonumber(e) <= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
end
redis.call('HINCRBY', KEYS[1], 'v', ARGV[1])
-- Lua numbers are doubles: read the result back as text to keep all 64 bits.
return redis.call('HGET', KEYS[1], 'v')
"""

_PUSH = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'hash' then
  local e = redis.call('HGET', KEYS[1], 'e')
  if e and tonumber(e) <= tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[1])
    t = 'none'
  else
    return redis.error_reply('LOLONOTLIST')
  end
end
if t == 'none' then redis.call('DEL', KEYS[2]) end
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
local keep = tonumber(ARGV[1])
if n > keep then redis.call('LTRIM', KEYS[1], -keep, -1) end
return redis.call('INCRBY', KEYS[2], #ARGV - 2)
"""

# A lease: written only when nothing live is there (a list counts as live). ARGV: the JSON
# text, its expiry, the caller's now, and when Redis may reclaim it (ms from now; 0: never).
_CLAIM = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'list' then return 0 end
if t == 'hash' then
  local e = redis.call('HGET', KEYS[1], 'e')
  if not e or tonumber(e) > tonumber(ARGV[3]) then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
"""

_RELEASE = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) <= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

_SCAN_BATCH = 500

_LONGEST_REDIS_TTL = 100 * 365 * 86400.0
"""Longer ttls (up to any finite one) get no Redis expiry: PEXPIRE counts in signed 64-bit
milliseconds from now, and a value kept a century is not worth reclaiming on time."""


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for messages and logs.

    The password may be in the user info (``redis://user:pw@host``) or, as redis-py also
    reads it, in the query (``?password=pw``). Everything else is shown as given."""
    try:
        parts = urlsplit(url)
        userinfo, at, host = parts.netloc.rpartition("@")
        netloc = parts.netloc
        if at and ":" in userinfo:  # the same split urlsplit's .password makes
            netloc = f"{userinfo.partition(':')[0]}:***@{host}"
        query = "&".join(_redact_field(field) for field in parts.query.split("&"))
        if netloc == parts.netloc and query == parts.query:
            return url
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "(an unparsable Redis URL)"


def _redact_field(field: str) -> str:
    """One ``name=value`` of a query, its value hidden if redis-py takes it as a password
    (it decodes the name first, so ``pass%77ord`` counts)."""
    name, equals, _ = field.partition("=")
    if equals and unquote_plus(name).strip().lower() == "password":
        return f"{name}=***"
    return field


def connect_redis(url: str, timeout: float) -> aioredis.Redis:
    """A client for ``url`` that fails fast: bounded connect and replies, one quick retry.

    Raises :class:`StateError` for a URL Redis cannot use."""
    try:
        return aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # One immediate retry when a connection breaks (a pooled one is stale after a
            # Redis restart), none on a timeout: a frozen server costs one timeout, not two.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            # Names written by others need not be UTF-8: decoded with surrogateescape they
            # round-trip to Redis intact and are told apart (lone surrogates) from ours.
            encoding_errors="surrogateescape",
        )
    except ValueError as exc:
        raise StateError(f"bad Redis URL {redact_url(url)}: {exc}") from None


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisBackend(StateBackend):
    """State of many apps on one Redis server (or a managed Redis), e.g.
    ``RedisBackend("redis://localhost:6379/0")``."""

    def __init__(
        self, url: str, clock: Clock = time.time, *, timeout: float = 2.0, namespace: str = "lolo"
    ) -> None:
        super().__init__(clock)
        self.url = url
        self.timeout = timeout
        self.namespace = namespace
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"RedisBackend({redact_url(self.url)!r}, {state})"

    @property
    def location(self) -> str:
        return redact_url(self.url)

    async def open(self) -> None:
        client = connect_redis(self.url, self.timeout)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise StateError(f"cannot reach Redis at {self.location}: {_reason(exc)}") from None
        self._client = client
        for name, source in (
            ("get", _GET),
            ("delete", _DELETE),
            ("live", _LIVE_KEYS),
            ("incr", _INCR),
            ("push", _PUSH),
            ("claim", _CLAIM),
            ("release", _RELEASE),
        ):
            self._scripts[name] = client.register_script(source)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ----------------------------------------------------------------- helpers

    def _key(self, app: str, key: str) -> str:
        # Both percent-encoded, so neither holds a ':' (nor a glob character): namespace
        # "lolo:a" with app "b" cannot meet namespace "lolo" with app "a" and key "b:...".
        return f"{quote(self.namespace, safe='')}:{quote(app, safe='')}:{key}"

    def _counter(self, app: str, key: str) -> str:
        """Where a list's item count lives: after '#', which the encoded app name never
        holds, so no key of ours is ever named so and no ``keys`` scan meets it."""
        return f"{quote(self.namespace, safe='')}:{quote(app, safe='')}#{key}"

    def _require_open(self) -> aioredis.Redis:
        if self._client is None:
            raise StateError("the state store is not open")
        return self._client

    async def _call(self, what: str, work: Awaitable[T], answers: bool = False) -> T:
        """Await ``work`` (``what`` says what it does, for messages); Redis errors become
        :class:`StateError`, except the error replies of our own scripts when ``answers``
        (the caller words those)."""
        try:
            return await work
        except ResponseError as exc:
            if answers:
                raise
            raise StateError(f"{what} failed: {_reason(exc)}") from None
        except (RedisError, OSError) as exc:
            raise StateError(f"{what} failed: Redis at {self.location}: {_reason(exc)}") from None

    async def _script(
        self, name: str, key: str, keys: list[str], args: list[Any], answers: bool = False
    ) -> Any:
        self._require_open()
        return await self._call(
            f"{name} of key {key!r}", self._scripts[name](keys=keys, args=args), answers
        )

    # ----------------------------------------------------------------- storage primitives

    async def kv_get(self, app: str, key: str, now: float) -> str | None:
        found = await self._script("get", key, [self._key(app, key)], [repr(now)])
        if not found:
            return None
        kind, value = found
        if kind == "v":
            return str(value)
        return "[" + ",".join(value) + "]"

    async def kv_set(self, app: str, key: str, text: str, expires_at: float | None) -> None:
        client = self._require_open()
        name = self._key(app, key)
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(name, self._counter(app, key))
            if expires_at is None:
                pipe.hset(name, "v", text)
            else:
                pipe.hset(name, mapping={"v": text, "e": repr(expires_at)})
                # Redis reclaims it a second after our own clock says it lapsed; a ttl
                # longer than Redis can count (or than is worth counting) is left to us.
                remaining = max(0.0, expires_at - self.clock())
                if remaining <= _LONGEST_REDIS_TTL:
                    pipe.pexpire(name, int(remaining * 1000) + 1000)
            await self._call(f"set of key {key!r}", pipe.execute())

    async def kv_delete(self, app: str, key: str, now: float) -> bool:
        return bool(
            await self._script(
                "delete", key, [self._key(app, key), self._counter(app, key)], [repr(now)]
            )
        )

    async def kv_keys(self, app: str, prefix: str, now: float) -> list[str]:
        client = self._require_open()
        base = self._key(app, "")
        pattern = _glob_escape(base + prefix) + "*"

        async def scan() -> list[str]:
            found: list[str] = []
            batch: list[str] = []
            async for name in client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    found += await self._scripts["live"](keys=batch, args=[repr(now)])
                    batch = []
            if batch:
                found += await self._scripts["live"](keys=batch, args=[repr(now)])
            return found

        names = await self._call(f"keys with prefix {prefix!r}", scan())
        return [key for key in (name[len(base) :] for name in set(names)) if _is_key(key)]

    async def kv_incr(self, app: str, key: str, by: int, now: float) -> int:
        try:
            return int(
                await self._script(
                    "incr", key, [self._key(app, key)], [str(by), repr(now)], answers=True
                )
            )
        except ResponseError as exc:
            message = str(exc)
        # Worded here, outside the except: kv_get may raise a StateError of its own.
        kind: str | None = None
        if "LOLOLIST" in message:
            kind = "list"
        elif "not an integer" in message:  # HINCRBY on a value that is no 64-bit int
            kind = _type_name(await self.kv_get(app, key, now))
        if "overflow" in message or kind == "int":  # an int past 64 bits, stored by set()
            raise StateError(f"cannot incr key {key!r}: the result would overflow 64 bits")
        if kind is None:  # not about the value: e.g. Redis out of memory, a read-only replica
            raise StateError(
                f"incr of key {key!r} failed: Redis at {self.location}: {message.rstrip('.')}"
            )
        raise StateError(f"cannot incr key {key!r}: it holds a {kind}, not an int")

    async def kv_push(self, app: str, key: str, texts: list[str], keep: int, now: float) -> int:
        try:
            return int(
                await self._script(
                    "push",
                    key,
                    [self._key(app, key), self._counter(app, key)],
                    [str(keep), repr(now), *texts],
                    answers=True,
                )
            )
        except ResponseError as exc:
            if "LOLONOTLIST" in str(exc):
                raise StateError(
                    f"cannot push to key {key!r}: it holds a value stored "
                    "with set(); push makes lists of its own"
                ) from None
            raise StateError(
                f"push to key {key!r} failed: Redis at {self.location}: {_reason(exc)}"
            ) from None

    async def kv_claim(self, app: str, key: str, text: str, expires_at: float, now: float) -> bool:
        remaining = max(0.0, expires_at - now)
        reclaim = int(remaining * 1000) + 1000 if remaining <= _LONGEST_REDIS_TTL else 0
        keys = [self._key(app, key), self._counter(app, key)]
        args = [text, repr(expires_at), repr(now), str(reclaim)]
        return bool(await self._script("claim", key, keys, args))

    async def kv_release(self, app: str, key: str, text: str, now: float) -> bool:
        return bool(await self._script("release", key, [self._key(app, key)], [text, repr(now)]))


def _is_key(name: str) -> bool:
    """Whether ``name`` could be a key of ours (one written by hand need not be)."""
    try:
        validate_key(name)
    except StateError:
        return False
    return True


def _type_name(text: str | None) -> str:
    try:
        return type(json.loads(text)).__name__ if text is not None else "NoneType"
    except ValueError:
        return "value"


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.rstrip(".")
