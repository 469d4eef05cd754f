"""The whole contract between the engine, triggers and handlers, in one place.

A handler is ``async def handler(ev, ctx)`` (a plain ``def`` works too): ``ev`` is a plain
dict, ``ctx`` a :class:`lolo_runtime.context.Context`. A trigger starts a chain of events
on behalf of an :class:`Invocation` (one WebSocket connection, one HTTP request...);
``ctx.emit`` talks back to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from lolo_runtime.context import Context

Event: TypeAlias = dict[str, Any]
"""What travels along an edge. Fan-out hands the *same* dict to every target: not copied."""

Handler: TypeAlias = Callable[[Event, "Context"], Awaitable[None] | None]


class Invocation(Protocol):
    """The trigger call that started a chain; every event of the chain carries it."""

    @property
    def session_id(self) -> str: ...

    def emit(self, name: str, payload: Any) -> None:
        """Deliver a named event (``response``...) back to the trigger. Never blocks."""

    def fail(self, node_id: str, error: BaseException) -> None:
        """Told when a handler of this chain raised: a trigger may refuse or answer 500."""


class StateAPI(Protocol):
    """``ctx.state``: the app's persistent key/value store."""

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def keys(self, prefix: str = "") -> list[str]: ...

    async def incr(self, key: str, by: int = 1) -> int: ...

    async def push(self, key: str, value: Any, *more: Any, keep: int) -> int: ...

    async def claim(self, key: str, ttl: float, value: Any = True) -> bool: ...

    async def release(self, key: str, value: Any = True) -> bool: ...
