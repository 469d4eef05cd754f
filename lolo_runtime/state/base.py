"""The state-store interface: one :class:`StateBackend` per store, one :class:`AppState` per app.

Handlers see an :class:`AppState` as ``ctx.state``. Everything that must behave the same on
every backend (argument checking, JSON encoding, the ``set(key, None)`` rule, sorting of
``keys``) lives here; a backend only implements the small ``kv_*`` storage primitives, which
take already-validated arguments and JSON text.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeAlias

from lolo_runtime.errors import LoloError

__all__ = [
    "AppState",
    "Clock",
    "JSONValue",
    "StateBackend",
    "StateError",
    "decode_value",
    "encode_value",
    "validate_key",
]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
"""What can be stored: JSON values, nested arbitrarily (up to :data:`MAX_DEPTH` levels)."""

Clock: TypeAlias = Callable[[], float]
"""Returns the current time in seconds (``time.time`` by default; tests inject a fake)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""``incr`` works on signed 64-bit integers (as Redis does), so every backend can do it exactly."""

MAX_PUSH = 1000
"""Most values one ``push`` appends (a Redis script takes its arguments on the Lua stack)."""

MAX_DEPTH = 200
"""Deepest nesting of lists/dicts accepted in a value (also catches self-referencing values)."""


class StateError(LoloError):
    """Raised for every misuse or failure of the state store."""


def validate_key(key: object) -> str:
    """Return ``key`` if it is a usable key (a non-empty str that UTF-8 can encode)."""
    if not isinstance(key, str):
        raise StateError(f"state key must be a str, not {type(key).__name__}: {key!r}")
    if not key:
        raise StateError("state key must not be empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StateError(f"state key {key!r} is not valid unicode (lone surrogate)") from exc
    return key


def _find_non_json(value: object, where: str, depth: int) -> str | None:
    """Describe the first part of ``value`` that is not a JSON value, or return None."""
    if depth > MAX_DEPTH:
        return f"nesting deeper than {MAX_DEPTH} levels (or a circular reference) at {where}"
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"float {value!r} at {where} (NaN and infinities are not JSON)"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _find_non_json(item, f"{where}[{index}]", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"dict key of type {type(name).__name__} ({name!r}) at {where}"
            problem = _find_non_json(item, f"{where}[{name!r}]", depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{type(value).__name__} at {where}"


# Built once: json.dumps with options builds an encoder on every call.
# ensure_ascii keeps lone surrogates in strings storable (as \\ud800 escapes).
_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()


def encode_value(key: str, value: object) -> str:
    """Check that ``value`` is a JSON value and return its compact JSON text.

    Raises :class:`StateError` naming ``key`` and the offending type otherwise. Tuples are
    refused too: they would come back as lists, and a store should give back what it was given.
    """
    # Fast path, all in C: encode, decode, compare. json.dumps quietly turns tuples into
    # lists and int keys into strings; the round trip catches exactly those, and then the
    # (slower, Python) walk names the offending part.
    try:
        # ensure_ascii keeps lone surrogates in strings storable (as \\ud800 escapes).
        text = _ENCODER.encode(value)
        if _depth_ok(text) and _DECODER.decode(text) == value:
            return text
    except (TypeError, ValueError, RecursionError):
        pass
    problem = _find_non_json(value, "$", 0)
    if problem is not None:
        raise StateError(f"cannot store key {key!r}: value is not JSON ({problem})")
    try:
        return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (ValueError, RecursionError) as exc:  # e.g. an int too long to print as decimal
        raise StateError(f"cannot store key {key!r}: {exc}") from exc


def _depth_ok(text: str) -> bool:
    """Whether JSON ``text`` nests at most MAX_DEPTH deep (cheap: most values are shallow)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


def decode_value(key: str, text: str) -> Any:
    """Parse stored JSON text back into a value."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StateError(f"stored value of key {key!r} is not valid JSON") from exc


def _validate_ttl(key: str, ttl: object) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise StateError(f"ttl for key {key!r} must be a number of seconds or None")
    if not math.isfinite(ttl) or ttl <= 0:
        raise StateError(f"ttl for key {key!r} must be a positive finite number, got {ttl!r}")
    return float(ttl)


class StateBackend(ABC):
    """One store (a SQLite file, later perhaps a Redis server) holding the state of many apps.

    Use ``await backend.open()`` / ``await backend.close()`` or ``async with backend:``.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock: Clock = clock

    @abstractmethod
    async def open(self) -> None:
        """Connect / create the store. Raises :class:`StateError` if it cannot be used."""

    @abstractmethod
    async def close(self) -> None:
        """Finish queued operations and release every resource. Safe to call twice."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a file path; a Redis URL without password)."""
        return type(self).__name__

    def problem(self) -> str | None:
        """Why the store cannot be used right now (for health checks), or None."""
        return None

    def for_app(self, app_name: str) -> AppState:
        """Return the state of one app; apps never see each other's keys."""
        if not isinstance(app_name, str) or not app_name:
            raise StateError(f"app name must be a non-empty str, not {app_name!r}")
        return AppState(self, app_name)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Storage primitives. Arguments are already validated; values are JSON text; ``now`` is the
    # clock reading taken by the caller. A row whose ``expires_at <= now`` must act as absent.

    @abstractmethod
    async def kv_get(self, app: str, key: str, now: float) -> str | None:
        """Return the JSON text stored under ``key`` or None."""

    @abstractmethod
    async def kv_set(self, app: str, key: str, text: str, expires_at: float | None) -> None:
        """Store ``text`` under ``key`` (replacing any value and any expiry)."""

    @abstractmethod
    async def kv_delete(self, app: str, key: str, now: float) -> bool:
        """Remove ``key``; return whether a live value was there."""

    @abstractmethod
    async def kv_keys(self, app: str, prefix: str, now: float) -> list[str]:
        """Return the live keys starting with ``prefix`` (any order)."""

    @abstractmethod
    async def kv_incr(self, app: str, key: str, by: int, now: float) -> int:
        """Atomically add ``by`` to the integer under ``key`` (absent counts as 0).

        A live key keeps its expiry; an absent or expired key starts from 0 with no expiry.
        Raises :class:`StateError` (and changes nothing) if the stored value is not an integer
        or the result is outside [INT64_MIN, INT64_MAX]; also if ``key`` holds a list.
        """

    @abstractmethod
    async def kv_push(self, app: str, key: str, texts: list[str], keep: int, now: float) -> int:
        """In one atomic step, append ``texts`` (one or more, in order) to the list under
        ``key`` (absent: a new list) and drop its oldest items past the last ``keep``;
        return the last item's number (1 for a new list's first item, one more for each
        item appended, trims or not).

        Raises :class:`StateError` (and changes nothing) if ``key`` holds a live value
        stored by ``set`` (lists are made by ``push`` only; an expired value counts as
        absent). ``kv_get`` returns such a list as one JSON array; ``kv_set`` replaces it.
        """

    @abstractmethod
    async def kv_claim(self, app: str, key: str, text: str, expires_at: float, now: float) -> bool:
        """In one atomic step (across processes): if ``key`` holds no live value, store
        ``text`` there until ``expires_at`` and return True; else change nothing and return
        False. A list made by ``push`` counts as a live value.
        """

    @abstractmethod
    async def kv_release(self, app: str, key: str, text: str, now: float) -> bool:
        """In one atomic step: if ``key`` holds the live value ``text`` (exactly), delete
        it and return True; else change nothing and return False."""


class AppState:
    """The key/value state of one app (what a handler sees as ``ctx.state``).

    Values are JSON values: None, bool, int, float (finite), str, lists and dicts with str keys,
    nested. Reading gives back a fresh copy; mutating it does not change what is stored.
    """

    __slots__ = ("_app", "_backend")

    def __init__(self, backend: StateBackend, app_name: str) -> None:
        self._backend = backend
        self._app = app_name

    @property
    def app_name(self) -> str:
        return self._app

    def __repr__(self) -> str:
        return f"AppState(app={self._app!r}, backend={type(self._backend).__name__})"

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` if it is absent or expired."""
        validate_key(key)
        text = await self._backend.kv_get(self._app, key, self._backend.clock())
        return default if text is None else decode_value(key, text)

    async def set(self, key: str, value: object, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; it expires after ``ttl`` seconds if ``ttl`` is given.

        As on Lolo, ``set(key, None)`` deletes the key. A set without ``ttl`` removes any
        earlier expiry. Raises :class:`StateError` (naming the key and the offending type) if
        ``value`` is not a JSON value.
        """
        validate_key(key)
        seconds = _validate_ttl(key, ttl)
        if value is None:
            await self.delete(key)
            return
        text = encode_value(key, value)
        expires_at = None if seconds is None else self._backend.clock() + seconds
        await self._backend.kv_set(self._app, key, text, expires_at)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return True if it held a (non-expired) value."""
        validate_key(key)
        return await self._backend.kv_delete(self._app, key, self._backend.clock())

    async def keys(self, prefix: str = "") -> list[str]:
        """Return this app's live keys that start with ``prefix``, sorted."""
        if not isinstance(prefix, str):
            raise StateError(f"key prefix must be a str, not {type(prefix).__name__}")
        found = await self._backend.kv_keys(self._app, prefix, self._backend.clock())
        return sorted(found)

    async def incr(self, key: str, by: int = 1) -> int:
        """Atomically add ``by`` to the integer stored under ``key`` and return the new value.

        A missing or expired key counts as 0 (and the result has no expiry); a live key keeps
        its expiry. Counters are signed 64-bit integers: raises :class:`StateError` if the
        stored value is not an integer, or if it or the result is outside that range.
        """
        validate_key(key)
        if isinstance(by, bool) or not isinstance(by, int):
            raise StateError(f"incr of key {key!r}: 'by' must be an int, not {type(by).__name__}")
        if not INT64_MIN <= by <= INT64_MAX:
            raise StateError(f"incr of key {key!r}: 'by' is outside the signed 64-bit range")
        return await self._backend.kv_incr(self._app, key, by, self._backend.clock())

    async def push(self, key: str, value: object, *more: object, keep: int) -> int:
        """Append ``value`` (and ``more`` values, in order) to the list under ``key`` and keep
        only its last ``keep`` items, in one atomic step (safe from many processes at once);
        return the number of the last item appended: 1 for the first item of a new list,
        then 2, 3..., counting on past ``keep`` (so it tells items apart, and gives their
        order, across processes).

        ``get(key)`` reads the list (oldest first), ``set`` replaces it, ``delete`` removes
        it. A list is made by ``push`` only: pushing to a key that holds a value stored with
        ``set`` raises :class:`StateError`, as does a value that is not JSON (then nothing is
        appended). Lists never expire. A push writes only its own items, whatever the list's
        length; at most :data:`MAX_PUSH` values at once.
        """
        validate_key(key)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise StateError(f"push to key {key!r}: 'keep' must be an int >= 1, not {keep!r}")
        if len(more) >= MAX_PUSH:
            raise StateError(f"push to key {key!r}: at most {MAX_PUSH} values at once")
        texts = [encode_value(key, value)]
        texts += [encode_value(key, item) for item in more]
        return await self._backend.kv_push(self._app, key, texts, keep, self._backend.clock())

    async def claim(self, key: str, ttl: float, value: object = True) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds unless the key already holds a
        live value; return whether this call stored it. Atomic across every process sharing
        the store, so of many callers racing for one key exactly one gets True until the
        value expires (or is deleted): a lease, e.g. "this tick of the timer is mine".
        """
        validate_key(key)
        seconds = _validate_ttl(key, ttl)
        if seconds is None:  # a claim nobody could ever take back would be a bug, not a lease
            raise StateError(f"claim of key {key!r} needs a ttl (seconds)")
        if value is None:
            raise StateError(f"claim of key {key!r}: the value must not be None")
        text = encode_value(key, value)
        now = self._backend.clock()
        return await self._backend.kv_claim(self._app, key, text, now + seconds, now)

    async def release(self, key: str, value: object = True) -> bool:
        """Give back a lease taken by :meth:`claim`: delete ``key`` only if it still holds
        ``value`` (the claim's own value), and return whether it did. A lease that lapsed
        and was claimed by someone else meanwhile is theirs, and is left alone."""
        validate_key(key)
        if value is None:
            raise StateError(f"release of key {key!r}: the value must not be None")
        text = encode_value(key, value)
        return await self._backend.kv_release(self._app, key, text, self._backend.clock())
