"""The OpenAPI 3.1 document of a flow's HTTP API: ``lolo-run openapi FLOW`` and
``GET /_lolo/openapi.json``.

Each node that serves HTTP describes its own paths: any node with a method
``openapi_paths(self) -> dict[str, dict[str, Any]]`` (OpenAPI path -> path item) takes
part, whatever its class (duck typing, so plugins and node types written later join in).
This module adds what no single node knows: the app's name, the security schemes, and
security for operations whose chain passes through ``lolo/api-auth`` (found by walking
the flow's edges from the node's out-ports).

The helpers below (:func:`openapi_path`, :func:`json_content`...) are for the nodes'
``openapi_paths``; this module imports no node module at load, so they can import it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lolo_runtime.edge.types import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from lolo_runtime.loader import Flow
    from lolo_runtime.node import Node

OPENAPI_PATH = "/_lolo/openapi.json"
OPENAPI_VERSION = "3.1.0"
DOCUMENT_VERSION = "1"
"""``info.version``: flows carry no version of their own."""

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "lolo-api-key"},
    "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "lolo-api-key"},
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A lolo-api-key as 'Authorization: Bearer <key>'.",
    },
}
"""The three ways ``lolo/api-auth`` (and ``lolo/crud-api`` with ``auth``) read a key."""

WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
_OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# Helpers for the nodes' openapi_paths.


def security_requirements() -> list[dict[str, list[str]]]:
    """Any one of the key's three spellings will do (a list of alternatives)."""
    return [{name: []} for name in SECURITY_SCHEMES]


def openapi_path(pattern: str) -> tuple[str, list[dict[str, Any]]]:
    """A route pattern in OpenAPI's spelling, and its path parameters:
    ``/users/:id`` -> ``/users/{id}``; a final ``*`` (the rest of the path) -> ``{rest}``."""
    segments, parameters = [], []
    for segment in pattern.split("/"):
        if segment.startswith(":") or segment == "*":
            name = segment[1:] if segment != "*" else "rest"
            segments.append(f"{{{name}}}")
            parameter: dict[str, Any] = {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            }
            if segment == "*":
                parameter["description"] = "The rest of the path (ev.params['*'])"
            parameters.append(parameter)
        else:
            segments.append(segment)
    return "/".join(segments), parameters


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def text_content() -> dict[str, Any]:
    """The edge's own refusals (413, 405...) are short text."""
    return {"text/plain": {"schema": {"type": "string"}}}


def error_schema() -> dict[str, Any]:
    """``{"error": "...", "errors"?: [{"path", "message"}]}``: the JSON refusals."""
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "message"],
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


def chain_operation(node_id: str, method: str, max_body_bytes: int) -> dict[str, Any]:
    """An operation whose answer is whatever the flow's chain emits (``default``), after
    the refusals an HTTP trigger makes itself: a body unlike its Content-Type, too big."""
    operation: dict[str, Any] = {
        "operationId": f"{node_id}-{method.lower()}",
        "responses": {
            "default": {"description": "What the flow emits as 'response'"},
            "400": {"description": "A body not what its Content-Type says", **_text()},
            "413": {"description": f"A body over {max_body_bytes} bytes", **_text()},
        },
    }
    if method in ("POST", "PUT", "PATCH"):
        any_body: dict[str, Any] = {"schema": {}}
        operation["requestBody"] = {
            "content": {"application/json": any_body, "text/plain": any_body}
        }
    return operation


def _text() -> dict[str, Any]:
    return {"content": text_content()}


# The document.


def build_document(flow: Flow) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every HTTP path the flow's nodes describe."""
    paths: dict[str, dict[str, Any]] = {}
    for node in flow.nodes.values():
        describe: Callable[[], dict[str, dict[str, Any]]] | None = getattr(
            node, "openapi_paths", None
        )
        if not callable(describe):
            continue
        guarded = _auth_downstream(flow, node)
        for path, item in describe().items():
            merged = paths.setdefault(path, {})
            for key, value in item.items():
                if key in _OPERATIONS:
                    value = {**value, "x-lolo-node": node.id}
                    if guarded is not None:
                        _add_security(key, value, *guarded)
                merged.setdefault(key, value)
    info: dict[str, Any] = {"title": flow.app, "version": DOCUMENT_VERSION}
    if flow.spec.description:
        info["description"] = flow.spec.description
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": dict(sorted(paths.items())),
    }
    if any(
        "security" in op
        for item in paths.values()
        for key, op in item.items()
        if key in _OPERATIONS
    ):
        document["components"] = {"securitySchemes": SECURITY_SCHEMES}
    return document


def _auth_downstream(flow: Flow, node: Node) -> tuple[bool, bool] | None:
    """Whether the node's chains reach ``lolo/api-auth``: None if never, else (on every
    chain: the node feeds only auth nodes; authorize: whether one refuses read keys)."""
    from lolo_runtime.nodes.api_auth import ApiAuthNode

    def fed_by(source: Node) -> list[Node]:
        table = flow.table
        return [flow.nodes[t] for p in source.out_ports for t, _ in table.targets(source.id, p)]

    first = fed_by(node)
    seen: set[str] = set()
    queue = list(first)
    found: list[Node] = []
    while queue:
        current = queue.pop()
        if current.id in seen:
            continue
        seen.add(current.id)
        if isinstance(current, ApiAuthNode):
            found.append(current)
        queue.extend(fed_by(current))
    if not found:
        return None
    always = all(isinstance(target, ApiAuthNode) for target in first)
    authorize = any(auth.params.authorize for auth in found)
    return always, authorize


def _add_security(method: str, operation: dict[str, Any], always: bool, authorize: bool) -> None:
    """Document the key an api-auth node downstream asks for (unless the node did)."""
    if "security" in operation:
        return
    # ``{}`` among the alternatives: some requests may need no key (the chain decides).
    operation["security"] = security_requirements() + ([] if always else [{}])
    responses = operation.setdefault("responses", {})
    problem = {"description": "", "content": text_content()}
    responses.setdefault("401", {**problem, "description": "No valid API key"})
    if authorize and method in WRITE_METHODS:
        responses.setdefault("403", {**problem, "description": "A read-only API key"})


class OpenApiRoute:
    """``GET /_lolo/openapi.json`` (an edge ``HttpRoute``). The document is built on the
    first request, so that a node's faulty description costs a 500 here, not the app."""

    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    max_body_bytes: int = 0

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self._body: bytes | None = None

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        if self._body is None:
            self._body = encode_document(build_document(self.flow))
        return HttpResponse(
            200,
            [("content-type", "application/json"), ("cache-control", "no-cache")],
            self._body,
        )


def encode_document(document: dict[str, Any]) -> bytes:
    """The document as served and printed: indented JSON, UTF-8, a final newline."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
