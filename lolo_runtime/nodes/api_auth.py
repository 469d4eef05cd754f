"""``lolo/api-auth``: lets an event on only if it carries a valid ``lolo-api-key``.

The key is read from the ``lolo-api-key`` query parameter or header, or from
``Authorization: Bearer <key>``. A valid key sets
``ev["session"] = {"accountId": ..., "email": ...}`` and routes the event on; a missing
or invalid one raises :class:`~lolo_runtime.errors.Reject` (401), which stops the chain
and, for a WebSocket ``req`` event, refuses the handshake; an HTTP trigger answers the
request 401 (with ``WWW-Authenticate: Bearer``). Keys never reach the log: every log
line is redacted (:mod:`lolo_runtime.logs`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from lolo_runtime.apikeys import verify_key
from lolo_runtime.context import Context, SetupContext
from lolo_runtime.errors import Reject
from lolo_runtime.node import Node
from lolo_runtime.state import StateBackend
from lolo_runtime.types import Event

KEY_NAME = "lolo-api-key"


def presented_key(ev: Event) -> str | None:
    """The key a client sent: the ``lolo-api-key`` query parameter, else that header,
    else ``Authorization: Bearer <key>``."""
    for source in (ev.get("query"), ev.get("headers")):
        if isinstance(source, dict):
            value: Any = source.get(KEY_NAME)
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, str) and value:
                return value
    headers = ev.get("headers")
    if isinstance(headers, dict):
        scheme, _, token = str(headers.get("authorization", "")).strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


class ApiAuthNode(Node):
    """Authenticates with the API keys that ``lolo-run keys create`` made."""

    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    _backend: StateBackend | None = None

    async def setup(self, ctx: SetupContext) -> None:
        self._backend = ctx.state_backend

    async def handle(self, ev: Event, ctx: Context) -> None:
        assert self._backend is not None, "setup() not run"
        key = presented_key(ev)
        if key is None:
            raise Reject(401, f"missing {KEY_NAME}")
        record = await verify_key(self._backend, key)
        if record is None:
            raise Reject(401, f"invalid {KEY_NAME}")
        ev["session"] = {"accountId": record.account_id, "email": record.email}
        ctx.route(ev, "out")
