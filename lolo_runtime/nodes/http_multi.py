"""``lolo/http-multi-trigger``: one path, one out-port per HTTP method, as Lolo's "HTTP Multi
Trigger".

The out-ports are named after the methods served: ``get``, ``post``, ``put``, ``patch``,
``delete`` (all five unless the flow sets ``outputs:``, as a Lolo user removes ports to
remove methods). A request goes out of its method's port (``HEAD`` out of ``get``) with the
event :mod:`lolo_runtime.nodes.http` makes, and the chain answers with
``ctx.emit("response", ...)`` as it would for ``lolo/http-trigger``. Other methods get 405
with ``Allow`` from the edge.

Why the *declared* ports decide, not the wired ones: the set is then known when the flow
loads, so ``lolo-run openapi`` documents exactly the methods a running app serves. A declared
port that no edge leaves could only ever time out, so the app refuses to start with one.

Before any chain runs, in this order: ``auth: true`` checks the API key as ``lolo/api-auth``
does (401), then the ``emails`` allow-list (403) and, with ``authorize: true``, the key's role
(403 for a read key that writes), and sets ``ev["session"]``; then a body that is not what
its Content-Type says is 400; then, with a ``schema``, a POST, PUT or PATCH body must be JSON
(415 otherwise, 400 when missing) and match the schema (400 with every complaint). Refusals
are JSON, ``{"error": ..., "errors"?: [{"path", "message"}]}``, as the OpenAPI document says.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.errors import NodeConfigError
from lolo_runtime.node import NodeConfig, TriggerHost
from lolo_runtime.nodes.api_auth import key_holder, may_use, session_of
from lolo_runtime.nodes.bodyschema import body_validator, is_json, schema_errors
from lolo_runtime.nodes.http import (
    AnsweringTrigger,
    BadBody,
    answer_with_chain,
    checked_route_path,
    parse_body,
    refusal,
)
from lolo_runtime.nodes.websocket import request_fields
from lolo_runtime.openapi import (
    chain_operation,
    error_schema,
    json_content,
    openapi_path,
    security_requirements,
)

if TYPE_CHECKING:
    from lolo_runtime.context import SetupContext
    from lolo_runtime.engine import Engine
    from lolo_runtime.state import StateBackend
    from lolo_runtime.types import Event

METHOD_PORTS = ("get", "post", "put", "patch", "delete")
BODY_PORTS = frozenset({"post", "put", "patch"})
"""The methods whose bodies the schema checks, as on Lolo."""


class MultiTriggerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        pattern=r"^/[^?#\s]*$",
        description="URL path served ('/items/:id' captures params.id; a final '*' matches "
        "the rest of the path).",
    )
    schema_: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="JSON Schema (draft 2020-12 unless it says '$schema') for POST, PUT and "
        "PATCH bodies; a body that breaks it gets 400 with the errors, before any chain.",
    )
    auth: bool = Field(
        False,
        description="Require an API key (read as lolo/api-auth reads it): 401 without a "
        "valid one. Sets ev.session {accountId, email, role}.",
    )
    emails: list[str] | None = Field(
        None,
        min_length=1,
        description="With auth: only keys of these emails are let in (others get 403).",
    )
    authorize: bool = Field(
        False, description="With auth: a read key gets 403 for POST, PUT, PATCH and DELETE."
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=0, description="Largest request body; bigger gets 413."
    )
    timeout: float = Field(
        120, gt=0, description="Seconds the chain has to emit a response; then 504."
    )

    @field_validator("path")
    @classmethod
    def _a_valid_pattern(cls, path: str) -> str:
        return checked_route_path(path)

    @field_validator("emails")
    @classmethod
    def _addresses(cls, emails: list[str] | None) -> list[str] | None:
        if emails is None:
            return None
        bad = [e for e in emails if "@" not in e or any(ch.isspace() for ch in e.strip())]
        if bad:
            raise ValueError(f"not an email address: {', '.join(map(repr, bad))}")
        return [e.strip() for e in emails]

    @model_validator(mode="after")
    def _auth_first(self) -> MultiTriggerParams:
        for name in ("emails", "authorize"):
            if getattr(self, name) and not self.auth:
                raise ValueError(f"'{name}' needs 'auth: true' (without a key, who is it?)")
        return self


class HttpMultiTrigger(AnsweringTrigger):
    """Serves ``params.path`` on the app's port; each method's requests out of its port."""

    Params = MultiTriggerParams
    outputs: ClassVar[tuple[str, ...]] = METHOD_PORTS
    ports_configurable: ClassVar[bool] = True

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: MultiTriggerParams = config.params  # type: ignore[assignment]
        if len(self.in_ports):
            raise NodeConfigError("a trigger has no in-ports; remove 'inputs:'", "inputs")
        unknown = [port for port in self.out_ports if port not in METHOD_PORTS]
        if unknown or not len(self.out_ports):
            raise NodeConfigError(
                f"the out-ports are the methods served, from {', '.join(METHOD_PORTS)} "
                + (f"(not {', '.join(map(repr, unknown))})" if unknown else "(at least one)"),
                "outputs",
            )
        self.methods = frozenset(port.upper() for port in self.out_ports)
        self.max_body_bytes = self.params.max_body_bytes
        schema = self.params.schema_
        if schema is not None and not BODY_PORTS & set(self.out_ports):
            raise NodeConfigError(
                "'schema' checks POST, PUT and PATCH bodies, and none of them is served",
                "params.schema",
            )
        self.validator = body_validator(schema, "params.schema") if schema is not None else None
        self.emails = {e.casefold() for e in self.params.emails or ()}
        self._engine: Engine | None = None
        self._backend: StateBackend | None = None

    @property
    def http_path(self) -> str | None:
        return self.params.path

    async def setup(self, ctx: SetupContext) -> None:
        unwired = [port for port in self.out_ports if not ctx.is_wired(port)]
        if unwired:
            # Its requests could only wait for the timeout and get 504.
            raise ValueError(
                f"out-port(s) {', '.join(map(repr, unwired))} lead nowhere: wire them, or "
                "leave those methods out of 'outputs:' (they then get 405)"
            )
        if self.params.auth:
            self._backend = ctx.state_backend

    async def start(self, host: TriggerHost) -> None:
        self._engine = host.engine
        host.add_http_route(self.params.path, self)

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        assert self._engine is not None, "trigger used before start()"
        # The edge answered methods without a port (405); HEAD comes only when GET is served.
        port = "get" if request.method == "HEAD" else request.method.lower()
        ev = request_fields(request)
        ev["routePath"] = self.params.path
        if self.params.auth:
            refused = await self._authenticate(ev)
            if refused is not None:
                return refused
        try:
            ev["body"] = parse_body(request)
        except BadBody as exc:
            return refusal(400, str(exc))
        ev["rawBody"] = request.body
        if self.validator is not None and port in BODY_PORTS:
            refused = self._check_body(request, ev["body"])
            if refused is not None:
                return refused
        return await answer_with_chain(
            self, self._engine, ev, request, self.params.timeout, port=port
        )

    async def _authenticate(self, ev: Event) -> HttpResponse | None:
        assert self._backend is not None, "setup() not run"
        record, why = await key_holder(self._backend, ev)
        if record is None:
            return refusal(401, why, ("www-authenticate", "Bearer"))
        if self.emails and record.email.casefold() not in self.emails:
            return refusal(403, "this key's email is not allowed here")
        if self.params.authorize and not may_use(record.role, ev["method"]):
            return refusal(403, f"a {record.role} key may not {ev['method']}")
        ev["session"] = session_of(record)
        return None

    def _check_body(self, request: HttpRequest, body: Any) -> HttpResponse | None:
        if not request.body:
            return refusal(400, "a JSON body is required")
        if not is_json(request.header("content-type")):
            return refusal(415, "the body must be JSON (Content-Type: application/json)")
        errors = schema_errors(self.validator, body)
        if errors:
            return refusal(400, "the body does not match the schema", errors=errors)
        return None

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        """Each served method as an HTTP trigger's operation (the chain answers, so any
        status is possible), plus what this node checks itself: schema, key, emails."""
        path, parameters = openapi_path(self.params.path)
        item: dict[str, Any] = {"parameters": parameters} if parameters else {}
        schema = self.params.schema_

        def refused(why: str) -> dict[str, Any]:
            return {"description": why, "content": json_content(error_schema())}

        for port in self.out_ports:
            operation = chain_operation(self.id, port.upper(), self.max_body_bytes)
            responses = operation["responses"]
            responses["400"] = refused("A body that is not what its Content-Type says")
            if self.config.name != self.id:
                operation["summary"] = self.config.name
            if schema is not None and port in BODY_PORTS:
                body_schema = copy.deepcopy(schema)  # the document is not the validator's
                operation["requestBody"] = {"required": True, "content": json_content(body_schema)}
                responses["400"] = refused(
                    "No body, or one that does not match the schema (errors: [{path, message}])"
                )
                responses["415"] = refused("A body that is not JSON")
            if self.params.auth:
                operation["security"] = security_requirements()
                responses["401"] = refused("No valid API key")
                if self.emails or (self.params.authorize and port != "get"):
                    responses["403"] = refused("A key this path does not let in")
            item[port] = operation
        return {path: item}
