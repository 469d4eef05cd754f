"""``lolo/crud-api``'s params, its JSON Schema checks, and its part of the OpenAPI document.

Kept apart from the node so that the node reads as the request's path, and so that what
the document promises (statuses, bodies) sits next to the checks that keep the promise.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from jsonschema.protocols import Validator
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lolo_runtime.errors import NodeConfigError
from lolo_runtime.nodes.bodyschema import body_validator
from lolo_runtime.openapi import error_schema, json_content, security_requirements, text_content

Action = Literal["list", "read", "create", "update", "patch", "delete"]
ALL_ACTIONS: tuple[Action, ...] = ("list", "read", "create", "update", "patch", "delete")
WRITE_ACTIONS: frozenset[str] = frozenset({"create", "update", "patch", "delete"})
BODY_ACTIONS: frozenset[str] = frozenset({"create", "update", "patch"})
"""The actions that take a body: it must be JSON (415), an object matching the schema (400)."""

ACTION_METHODS: dict[tuple[bool, str], Action] = {
    (False, "GET"): "list",
    (False, "POST"): "create",
    (True, "GET"): "read",
    (True, "PUT"): "update",
    (True, "PATCH"): "patch",
    (True, "DELETE"): "delete",
}
"""(on a record's path?, method) -> action."""


class CrudParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        max_length=64,
        description="The resource's name, one URL segment: 'notes' serves /notes and "
        "/notes/:id, and keeps records in state as notes/<id>.",
    )
    schema_: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="JSON Schema (draft 2020-12 unless it says '$schema') every record must "
        "match; bodies that do not get 400 with the errors. Unset: any JSON object.",
    )
    actions: list[Action] = Field(
        list(ALL_ACTIONS),
        min_length=1,
        description="Actions served (list, read, create, update, patch, delete); the "
        "methods of the others get 405. Default: all.",
    )
    auth: bool = Field(
        False,
        description="Require an API key (as lolo/api-auth reads it): 401 without a valid "
        "one, 403 when a read-only key tries to write. Sets ev.session.",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=0, description="Largest request body; bigger gets 413."
    )
    timeout: float = Field(
        120,
        gt=0,
        description="Seconds a chain wired to 'out' has to emit a response; then 504.",
    )

    @field_validator("actions")
    @classmethod
    def _each_once(cls, actions: list[Action]) -> list[Action]:
        twice = sorted({a for a in actions if actions.count(a) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} given more than once")
        return actions

    def validator(self) -> Validator | None:
        """The schema's validator (checked as lolo/http-multi-trigger checks its own);
        NodeConfigError, at the line of the mistake, if it cannot describe records."""
        schema = self.schema_
        if schema is None:
            return None
        try:
            validator = body_validator(schema, "params.schema")
        except NodeConfigError as exc:
            raise NodeConfigError(f"params.schema: {exc.message}", exc.field) from None
        declared = schema.get("type")
        if declared is not None and "object" not in (
            declared if isinstance(declared, list) else [declared]
        ):
            raise NodeConfigError(
                f"params.schema must describe an object (a record), not type {declared!r}",
                "params.schema.type",
            )
        return validator


# The OpenAPI description: what the node really answers, status by status.


def _with_id(schema: dict[str, Any] | None, stored: bool) -> dict[str, Any]:
    """The user's schema with the server's ``id``: required and an integer on stored
    records; anything (ignored) in request bodies."""
    result: dict[str, Any] = copy.deepcopy(schema) if schema is not None else {"type": "object"}
    properties: dict[str, Any] = result.setdefault("properties", {})
    if stored:
        properties["id"] = {"type": "integer", "minimum": 1, "readOnly": True}
        result["required"] = sorted({*result.get("required", []), "id"})
    else:
        properties["id"] = {"description": "Ignored: the server sets a record's id."}
    return result


def openapi_paths(node_id: str, params: CrudParams) -> dict[str, dict[str, Any]]:
    """``/<resource>`` and ``/<resource>/{id}``, with the enabled actions only."""
    resource = params.resource
    record = _with_id(params.schema_, stored=True)
    body = _with_id(params.schema_, stored=False)
    partial = {key: value for key, value in body.items() if key != "required"}

    def refused(why: str) -> dict[str, Any]:
        return {"description": why, "content": json_content(error_schema())}

    def operation(action: Action, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        op: dict[str, Any] = {
            "operationId": f"{node_id}-{action}",
            "summary": summary,
            "tags": [resource],
            "responses": {
                **responses,
                "400": refused(
                    "The body is not a JSON object, or does not match the schema "
                    "(errors: [{path, message}])"
                    if action in BODY_ACTIONS
                    else "A body that is not what its Content-Type says"
                ),
            },
        }
        if action in BODY_ACTIONS:
            op["requestBody"] = {
                "required": True,
                "content": json_content(partial if action == "patch" else body),
            }
            op["responses"]["415"] = refused("A body that is not JSON")
            op["responses"]["413"] = {
                "description": f"The body is over {params.max_body_bytes} bytes",
                "content": text_content(),
            }
        if action not in ("list", "create"):
            op["responses"]["404"] = refused(f"No {resource} has this id")
        if params.auth:
            op["security"] = security_requirements()
            op["responses"]["401"] = refused("No valid API key")
            if action in WRITE_ACTIONS:
                op["responses"]["403"] = refused("A read-only API key")
        return op

    record_json = {"content": json_content(record)}
    listed = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": record}},
    }
    ops: dict[Action, tuple[str, dict[str, Any]]] = {
        "list": (
            f"List every {resource}",
            {"200": {"description": "Every record, by id", "content": json_content(listed)}},
        ),
        "create": (
            f"Create a {resource}",
            {
                "201": {
                    "description": "Created; Location is its URL",
                    "headers": {"location": {"schema": {"type": "string"}}},
                    **record_json,
                }
            },
        ),
        "read": (f"Read a {resource}", {"200": {"description": "The record", **record_json}}),
        "update": (f"Replace a {resource}", {"200": {"description": "The record", **record_json}}),
        "patch": (
            f"Change some fields of a {resource}",
            {"200": {"description": "The record", **record_json}},
        ),
        "delete": (f"Delete a {resource}", {"204": {"description": "Deleted"}}),
    }
    collection: dict[str, Any] = {}
    item: dict[str, Any] = {
        "parameters": [
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        ]
    }
    for (on_item, method), action in ACTION_METHODS.items():
        if action in params.actions:
            summary, responses = ops[action]
            target = item if on_item else collection
            target[method.lower()] = operation(action, summary, responses)
    paths: dict[str, dict[str, Any]] = {}
    if collection:
        paths[f"/{resource}"] = collection
    if len(item) > 1:
        paths[f"/{resource}/{{id}}"] = item
    return paths
