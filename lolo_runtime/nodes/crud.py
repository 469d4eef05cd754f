"""``lolo/crud-api``: a REST resource kept in ``ctx.state``, as Lolo's "CRUD API v3".

``resource: notes`` serves ``GET /notes`` (list), ``POST /notes`` (create),
``GET /notes/:id`` (read), ``PUT`` (update), ``PATCH`` (patch) and ``DELETE`` (delete).
The node does the action itself (checks the key, validates the body, reads or writes the
record), then sends an event out of ``out`` carrying the request's fields, ``crud:
{action, resource}``, the suggested ``response``, and ``resource``/``resourceKey`` (or
``items`` for a list), as Lolo does. The chain answers with ``ctx.emit("response", ...)``,
usually ``ev["response"]``; when nothing is wired to ``out`` the node answers the suggested
response itself, so a bare CRUD node is a working API.

Refusals come before any chain, as JSON ``{"error": ..., "errors"?: [...]}``: 401 without
a valid key (``auth: true``), 403 for a read-only key that tries to write, 415 for a body
that is not JSON, 400 for one that is not a JSON object or breaks the schema, 404 for an
unknown id. A method left out of ``actions`` gets 405 from the edge.

Records are ``<resource>/<id>`` in the app's state (so on Redis with ``--redis``), ids
come from ``incr`` on ``<resource>#last-id``: unique across processes, never reused.
The ``id`` field of a record is the server's: one in a body is replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.node import NodeConfig, TriggerHost
from lolo_runtime.nodes.api_auth import key_holder, may_use, session_of
from lolo_runtime.nodes.bodyschema import is_json, schema_errors
from lolo_runtime.nodes.crud_schema import (
    ACTION_METHODS,
    ALL_ACTIONS,
    BODY_ACTIONS,
    Action,
    CrudParams,
    openapi_paths,
)
from lolo_runtime.nodes.http import (
    AnsweringTrigger,
    BadBody,
    answer_with_chain,
    build_response,
    parse_body,
    refusal,
)
from lolo_runtime.nodes.websocket import request_fields

if TYPE_CHECKING:
    from lolo_runtime.context import SetupContext
    from lolo_runtime.engine import Engine
    from lolo_runtime.state import StateBackend
    from lolo_runtime.types import Event, StateAPI

__all__ = ["ALL_ACTIONS", "CrudApiNode", "CrudParams", "CrudRoute"]


class CrudRoute:
    """One of the node's two paths (an edge ``HttpRoute``): the collection or one record."""

    __slots__ = ("methods", "node", "on_item")

    def __init__(self, node: CrudApiNode, on_item: bool):
        self.node = node
        self.on_item = on_item
        self.methods = frozenset(
            method
            for (item, method), action in ACTION_METHODS.items()
            if item == on_item and action in node.actions
        )

    @property
    def max_body_bytes(self) -> int:
        return int(self.node.params.max_body_bytes)

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        method = "GET" if request.method == "HEAD" else request.method
        return await self.node.serve(request, ACTION_METHODS[self.on_item, method])


class CrudApiNode(AnsweringTrigger):
    """Serves ``/<resource>`` and ``/<resource>/:id``; one chain per successful action."""

    Params = CrudParams
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: CrudParams = config.params  # type: ignore[assignment]
        self.resource = self.params.resource
        self.actions: frozenset[Action] = frozenset(self.params.actions)
        self.validator = self.params.validator()
        self._engine: Engine | None = None
        self._backend: StateBackend | None = None

    @property
    def http_path(self) -> str | None:
        return f"/{self.resource}"

    @property
    def http_paths(self) -> list[str]:
        return [f"/{self.resource}", f"/{self.resource}/:id"]

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        return openapi_paths(self.id, self.params)

    async def setup(self, ctx: SetupContext) -> None:
        if self.params.auth:
            self._backend = ctx.state_backend  # the API keys live outside the app's state

    async def start(self, host: TriggerHost) -> None:
        self._engine = host.engine
        host.add_http_route(f"/{self.resource}", CrudRoute(self, on_item=False))
        host.add_http_route(f"/{self.resource}/:id", CrudRoute(self, on_item=True))

    def key_of(self, record_id: int) -> str:
        return f"{self.resource}/{record_id}"

    async def serve(self, request: HttpRequest, action: Action) -> HttpResponse:
        engine = self._engine
        assert engine is not None, "trigger used before start()"
        ev = request_fields(request)
        ev["routePath"] = f"/{self.resource}/:id" if "id" in request.params else self.http_path
        ev["rawBody"] = request.body
        if self.params.auth:  # first: a client without a key learns nothing more
            refused = await self._authenticate(ev, action)
            if refused is not None:
                return refused
        if action in BODY_ACTIONS and request.body and not is_json(request.header("content-type")):
            return refusal(415, "the body must be JSON (Content-Type: application/json)")
        try:
            ev["body"] = parse_body(request)
        except BadBody as exc:
            return refusal(400, str(exc))
        ev["crud"] = {"action": action, "resource": self.resource}
        refused = await self._act(engine.state, ev, action)
        if refused is not None:
            return refused
        if not engine.is_wired(self.id, "out"):
            return build_response(ev["response"])
        return await answer_with_chain(self, engine, ev, request, self.params.timeout)

    async def _authenticate(self, ev: Event, action: Action) -> HttpResponse | None:
        """401 without a valid key, 403 for a read key that writes; else sets
        ``ev["session"]`` as ``lolo/api-auth`` does."""
        assert self._backend is not None, "setup() not run"
        record, why = await key_holder(self._backend, ev)
        if record is None:
            return refusal(401, why, ("www-authenticate", "Bearer"))
        ev["session"] = session_of(record)
        if not may_use(record.role, ev["method"]):
            return refusal(403, f"a {record.role} key may not {action} {self.resource}")
        return None

    async def _act(self, state: StateAPI, ev: Event, action: Action) -> HttpResponse | None:
        """Do ``action``; set the event's ``resource``/``resourceKey`` or ``items`` and
        its suggested ``response``. Returns a refusal instead when there is one."""
        if action == "list":
            items = await self._all(state)
            ev["items"] = items
            ev["response"] = {"status": 200, "body": {"items": items}}
            return None
        body = ev["body"]
        if action == "create":
            problem = self._invalid(body)
            if problem is not None:
                return problem
            record_id = await state.incr(f"{self.resource}#last-id")
            record = {**body, "id": record_id}
            await state.set(self.key_of(record_id), record)
            location = f"/{self.resource}/{record_id}"
            ev["resourceKey"], ev["resource"] = self.key_of(record_id), record
            ev["response"] = {"status": 201, "headers": {"location": location}, "body": record}
            return None
        given = ev["params"].get("id", "")
        wanted = _parse_id(given)
        key = self.key_of(wanted) if wanted is not None else ""
        found = await state.get(key) if wanted is not None else None
        if wanted is None or not isinstance(found, dict):
            return refusal(404, f"no {self.resource} with id {given!r}")
        ev["resourceKey"] = key
        if action == "read":
            ev["resource"] = found
            ev["response"] = {"status": 200, "body": found}
            return None
        if action == "delete":
            await state.delete(key)
            ev["resource"] = found
            ev["response"] = {"status": 204}
            return None
        # update replaces the record; patch merges the body into it (one level, as
        # RFC 7396 does for top-level fields). The result is what the schema must accept.
        if not isinstance(body, dict):
            return self._invalid(body)
        merged = {**found, **body} if action == "patch" else dict(body)
        merged.pop("id", None)
        problem = self._invalid(merged)
        if problem is not None:
            return problem
        record = {**merged, "id": wanted}
        await state.set(key, record)
        ev["resource"] = record
        ev["response"] = {"status": 200, "body": record}
        return None

    def _invalid(self, body: Any) -> HttpResponse | None:
        """400 with the schema's complaints, or None for a body that may be stored."""
        if not isinstance(body, dict):
            kind = "no body" if body is None else type(body).__name__
            return refusal(400, f"the body must be a JSON object, not {kind}")
        errors = schema_errors(self.validator, {k: v for k, v in body.items() if k != "id"})
        if errors:
            return refusal(
                400, f"the body does not match the {self.resource} schema", errors=errors
            )
        return None

    async def _all(self, state: StateAPI) -> list[Any]:
        """Every record, by id. One read per record: state has no bulk read."""
        prefix = f"{self.resource}/"
        numbered = sorted(
            (record_id, key)
            for key in await state.keys(prefix)
            if (record_id := _parse_id(key[len(prefix) :])) is not None
        )
        items = []
        for _, key in numbered:
            record = await state.get(key)
            if isinstance(record, dict):  # deleted meanwhile, or not ours: skipped
                items.append(record)
        return items


def _parse_id(text: str) -> int | None:
    """A record id as a URL gives it: digits only, no sign, no leading zero."""
    if text.isascii() and text.isdigit() and not text.startswith("0") and len(text) <= 18:
        return int(text)
    return None
