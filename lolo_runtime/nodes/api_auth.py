"""``lolo/api-auth``: lets an event on only if it carries a valid ``lolo-api-key``.

The key is read from the ``lolo-api-key`` query parameter or header, or from
``Authorization: Bearer <key>``. A valid key sets
``ev["session"] = {"accountId": ..., "email": ..., "role": "read" | "write"}`` and routes the
event on; a missing or invalid one raises :class:`~lolo_runtime.errors.Reject` (401), which
stops the chain and, for a WebSocket ``req`` event, refuses the handshake; an HTTP trigger
answers the request 401 (with ``WWW-Authenticate: Bearer``). With ``authorize: true`` a read
key is refused (403) for the methods that write (:data:`WRITE_METHODS`). Keys never reach the
log: every log line is redacted (:mod:`lolo_runtime.logs`).

Revocation takes effect on live connections too: every :data:`REVOCATION_CHECK_INTERVAL`
seconds, while WebSocket clients it let in are connected, the node reads which keys are
still live (one read of the store, shared by every process and app using it) and closes
the clients whose key is gone with code :data:`CLOSE_KEY_REVOKED`. Nothing they send
after that is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.apikeys import KeyRecord, live_key_ids, verify_key
from lolo_runtime.context import Context, SetupContext
from lolo_runtime.errors import Reject
from lolo_runtime.node import Node
from lolo_runtime.state import StateBackend, StateError
from lolo_runtime.types import Event

KEY_NAME = "lolo-api-key"
REVOCATION_CHECK_INTERVAL = 0.5
CLOSE_KEY_REVOKED = 4401
"""WebSocket close code for a client whose key was revoked (application range; mirrors
the HTTP 401 that the same key now gets at connect)."""

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""What a read key may not do when roles are enforced (GET, HEAD, OPTIONS only read)."""

log = logging.getLogger("lolo.auth")


class ApiAuthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    authorize: bool = Field(
        False,
        description="Enforce the key's role: a read key gets 403 for POST, PUT, PATCH and "
        "DELETE. Off: any valid key passes, and the chain may look at ev.session.role.",
    )


def session_of(record: KeyRecord) -> dict[str, str]:
    """``ev["session"]`` for a request made with ``record``'s key, as Lolo shapes it."""
    return {"accountId": record.account_id, "email": record.email, "role": record.role}


def may_use(role: str, method: str) -> bool:
    """Whether a key of ``role`` may make a request with ``method`` (write keys: any)."""
    return role == "write" or method.upper() not in WRITE_METHODS


async def key_holder(backend: StateBackend, ev: Event) -> tuple[KeyRecord | None, str]:
    """The record of the valid key ``ev`` presents, or None and why there is none
    (``missing lolo-api-key`` or ``invalid lolo-api-key``): what every node that checks
    keys refuses with 401."""
    key = presented_key(ev)
    if key is None:
        return None, f"missing {KEY_NAME}"
    record = await verify_key(backend, key)
    return record, "" if record is not None else f"invalid {KEY_NAME}"


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

    Params = ApiAuthParams
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    _backend: StateBackend | None = None

    async def setup(self, ctx: SetupContext) -> None:
        self._backend = ctx.state_backend
        self._is_connected: Callable[[str], bool] = ctx.is_connected
        # session id -> (its key's id, the emit of its req chain: ends the connection)
        self._holders: dict[str, tuple[str, Callable[[str, Any], None]]] = {}
        self._watch = asyncio.get_running_loop().create_task(self._watch_revocations())

    async def close(self) -> None:
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _watch_revocations(self) -> None:
        assert self._backend is not None
        failing = False
        while True:
            await asyncio.sleep(REVOCATION_CHECK_INTERVAL)
            holders = self._holders
            for session_id in [s for s in holders if not self._is_connected(s)]:
                del holders[session_id]
            if not holders:
                continue
            try:
                live = await live_key_ids(self._backend)
            except StateError as exc:
                if not failing:
                    log.warning("%s: cannot check for revoked keys: %s", self.id, exc)
                failing = True
                continue
            failing = False
            for session_id, (key_id, emit) in list(holders.items()):
                if key_id not in live:
                    del holders[session_id]
                    log.info(
                        "%s: session %s: key lolo_%s was revoked; closing the connection (%d)",
                        self.id,
                        session_id,
                        key_id,
                        CLOSE_KEY_REVOKED,
                    )
                    emit(
                        "response",
                        {"end": True, "code": CLOSE_KEY_REVOKED, "reason": "API key revoked"},
                    )

    async def handle(self, ev: Event, ctx: Context) -> None:
        assert self._backend is not None, "setup() not run"
        record, why = await key_holder(self._backend, ev)
        if record is None:
            raise Reject(401, why)
        method = ev.get("method")
        if self.params.authorize and isinstance(method, str) and not may_use(record.role, method):
            raise Reject(403, f"a {record.role} key may not {method.upper()}")
        ev["session"] = session_of(record)
        if self._is_connected(ctx.session_id):  # a WebSocket client: watch its key
            self._holders[ctx.session_id] = (record.key_id, ctx.emit)
        ctx.route(ev, "out")
