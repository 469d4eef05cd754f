"""Test your flows: run one in-process, talk to it as clients do, or run one node alone.

```python
from lolo_runtime.testing import run_flow

async def test_the_chat_relays(tmp_path):
    async with run_flow("flows/chat.yaml", state=tmp_path / "s.sqlite3") as app:
        ann, bob = await app.websocket("/socket"), await app.websocket("/socket")
        await ann.recv(), await bob.recv()          # the connect messages
        await ann.send("hi")
        assert (await bob.recv()).endswith("says: hi")
```

* :func:`run_flow` loads the flow (a broken one raises :class:`~lolo_runtime.errors.FlowErrors`
  with every ``path:line`` message), seeds the state store, starts the app on a free port of
  127.0.0.1, and stops it (gracefully) when the block ends. Handler modules are imported
  afresh for each run, so module-level tables start empty.
* :meth:`LoloApp.websocket` opens a real WebSocket client (the ``websockets`` library's);
  :meth:`LoloApp.http` sends a real HTTP request and returns an :class:`HttpAnswer`.
* :meth:`LoloApp.inject` hands an event to one node's in-port and returns what it routed and
  emitted (an :class:`Injected`), without carrying anything further: a unit test of a node
  inside its flow, with its real ``ctx``.
* :attr:`LoloApp.state` is the app's ``ctx.state``; ``seed={...}`` stores values before any
  node's ``setup`` runs.
* ``clock="2026-03-29T00:30:00+01:00"`` runs the flow's timers and the store's ttls on a
  :class:`~lolo_runtime.testclock.TestClock` that stands still until
  ``await app.clock.advance(seconds)``: every tick due meanwhile fires, in order, and its
  chain runs to its end. Give several apps one ``TestClock(start)`` to run them as
  processes of one app on one clock.

The pytest plugin (:mod:`lolo_runtime.pytest_plugin`, installed with the package) adds the
``lolo_state`` fixture: a fresh state file in the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import websockets

from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.nodes.function import forget_handler_modules
from lolo_runtime.nodes.timer import TimerTrigger
from lolo_runtime.runtime import Runtime, ServeOptions
from lolo_runtime.state import AppState, SQLiteBackend, StateBackend
from lolo_runtime.testclock import TestClock
from lolo_runtime.types import Event

__all__ = ["HttpAnswer", "Injected", "LoloApp", "TestClock", "run_flow"]


_UNSENDABLE = re.compile(r"[^\x21-\x7e]+")
"""What a request target cannot hold as it is: non-ASCII, spaces and control characters."""


@dataclass
class HttpAnswer:
    """An HTTP response as the client got it."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Injected:
    """What one node did with an injected event."""

    routed: list[tuple[str, Event]] = field(default_factory=list)
    """``(out-port, event)`` for each ``ctx.route``, in order (not carried further)."""
    emitted: list[tuple[str, Any]] = field(default_factory=list)
    """``(name, payload)`` for each ``ctx.emit``."""
    failed: BaseException | None = None
    """What the handler raised (it is also logged, as in a real run)."""

    def routed_to(self, port: str) -> list[Event]:
        return [ev for out_port, ev in self.routed if out_port == port]


class _Recorder:
    """The invocation of an injected event: keeps what the chain emits and raises."""

    def __init__(self, session_id: str, result: Injected) -> None:
        self._session_id = session_id
        self._result = result

    @property
    def session_id(self) -> str:
        return self._session_id

    def emit(self, name: str, payload: Any = None) -> None:
        self._result.emitted.append((name, payload))

    def fail(self, node_id: str, error: BaseException) -> None:
        self._result.failed = error


class LoloApp:
    """A flow running in this process (see :func:`run_flow`)."""

    def __init__(self, runtime: Runtime, state: AppState, clock: TestClock | None) -> None:
        self.runtime = runtime
        self.flow: Flow = runtime.flow
        self.state = state
        self._clock = clock

    @property
    def clock(self) -> TestClock:
        """The virtual clock of ``run_flow(..., clock=...)``."""
        if self._clock is None:
            raise RuntimeError(
                "this flow runs on the real clock; give run_flow(..., clock=START) "
                "(e.g. clock='2026-01-01T00:00:00+00:00') to move time by hand"
            )
        return self._clock

    @property
    def port(self) -> int:
        return self.runtime.bound_port

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def websocket(self, path: str, **options: Any) -> websockets.ClientConnection:
        """Connect a WebSocket client to ``path`` (e.g. ``/socket?lolo-api-key=...``).
        Options go to ``websockets.connect``. Close it, or leave it to the app's stop."""
        return await websockets.connect(self.url(path, "ws"), **options)

    async def http(
        self,
        method: str,
        path: str,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """Send one request; a dict or list body goes as JSON. ``path`` may carry a query
        string; characters that cannot go on the wire as they are (non-ASCII, spaces) are
        percent-encoded as UTF-8, as a browser does."""
        sent_headers = dict(headers or {})
        data: bytes | None
        if isinstance(body, Mapping | list):
            data = json.dumps(body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        else:
            data = body.encode() if isinstance(body, str) else body
        target = _UNSENDABLE.sub(lambda found: quote(found.group()), path)
        return await asyncio.to_thread(self._request, method, target, data, sent_headers)

    def _request(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> HttpAnswer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return HttpAnswer(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    async def inject(
        self, node_id: str, ev: Event, port: str = "in", session_id: str | None = None
    ) -> Injected:
        """Hand ``ev`` to ``node_id``'s in-port ``port``; return what it routed and emitted."""
        result = Injected()
        recorder = _Recorder(session_id or str(uuid.uuid4()), result)
        routed = await self.runtime.engine.inject(node_id, port, ev, recorder)
        result.routed = list(routed or [])
        return result


@asynccontextmanager
async def run_flow(
    flow: str | Path,
    *,
    state: str | Path | StateBackend,
    env: Mapping[str, str] | None = None,
    seed: Mapping[str, Any] | None = None,
    fresh_modules: bool = True,
    clock: float | str | datetime | TestClock | None = None,
) -> AsyncIterator[LoloApp]:
    """Run the flow at ``flow`` until the block ends.

    ``state`` is a SQLite file path (or any open-able :class:`StateBackend`, e.g. a
    ``RedisBackend``); ``env`` replaces the process environment for ``${VAR}``
    substitution; ``seed`` is stored in the app's state before any node is set up;
    ``clock`` (Unix seconds, an aware datetime or ISO 8601 text with an offset) starts
    a :class:`TestClock` there for the timers and the store (``app.clock``); a
    :class:`TestClock` itself is used as it is, so several apps can share one.
    """
    test_clock = (
        clock if isinstance(clock, TestClock) else TestClock(clock) if clock is not None else None
    )
    if fresh_modules:
        forget_handler_modules()
    loaded = load_flow(flow, environ=dict(env) if env is not None else None)
    backend = state if isinstance(state, StateBackend) else SQLiteBackend(state)
    runtime = Runtime(loaded, ServeOptions(port=0), backend)
    user = None
    if test_clock is not None:
        backend.clock = test_clock.time
        user = test_clock.attach(busy=lambda: runtime.engine.in_background)
        for node in loaded.nodes.values():
            if isinstance(node, TimerTrigger):
                node.clock, node.sleep = test_clock.time, user.sleeper()
    try:
        if seed:
            async with backend:
                for key, value in seed.items():
                    await backend.for_app(loaded.app).set(key, value)
        try:
            await runtime.start()
            yield LoloApp(runtime, backend.for_app(loaded.app), test_clock)
        finally:
            await runtime.stop()
    finally:
        if user is not None:
            user.detach()
