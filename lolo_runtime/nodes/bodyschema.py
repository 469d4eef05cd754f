"""JSON Schema checks of request bodies, for node types that refuse a bad body before any
chain runs (``lolo/http-multi-trigger``).

A schema is checked when the flow loads (``lolo-run check`` reports a broken one at its
line); then each body is checked against it, and every complaint goes back to the client
as ``{"path": <JSON pointer>, "message": ...}``. Formats (``"format": "email"``) are
asserted, as far as the installed ``jsonschema`` can check them. ``$ref`` works only inside
the schema: nothing is ever fetched from the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import referencing.exceptions
import referencing.jsonschema
from jsonschema.protocols import Validator

from lolo_runtime.errors import NodeConfigError

MAX_ERRORS = 20
"""A body can break a schema in thousands of places; the first few are enough to fix it."""
MAX_MESSAGE_CHARS = 300
"""jsonschema quotes the offending value in its messages: a 1 MiB string is cut short."""


def body_validator(schema: dict[str, Any], field: str) -> Validator:
    """The validator of ``schema`` (draft 2020-12 unless it names another in ``$schema``).

    Raises :class:`NodeConfigError` at ``field`` (or deeper, at the broken keyword) when it
    is not a valid JSON Schema or refers to something it does not contain."""
    kind = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        kind.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "".join(f".{part}" for part in exc.absolute_path)
        raise NodeConfigError(f"not a valid JSON Schema: {exc.message}", field + where) from None
    validator = kind(schema, format_checker=kind.FORMAT_CHECKER)
    broken = _unresolvable_ref(schema)
    if broken is None:
        try:  # what the walk leaves out (under a nested $id): a body's first level
            for _ in validator.iter_errors(_probe(schema)):
                pass
        except referencing.exceptions.Unresolvable as exc:
            cause = exc.__cause__  # jsonschema wraps the referencing library's error
            broken = exc.ref
            if isinstance(cause, referencing.exceptions.PointerToNowhere):
                broken = "#" + cause.ref  # the pointer only: the resource itself was found
    if broken is not None:
        raise NodeConfigError(
            f"cannot resolve $ref {broken!r}: only references inside the schema work",
            field,
        )
    return validator


_BASE = "urn:lolo:body-schema"
"""Where the schema is said to live while its references are resolved at load time."""


def _unresolvable_ref(schema: dict[str, Any]) -> str | None:
    """The first ``$ref`` of ``schema``, at any depth, that points nowhere inside it (the
    body check would otherwise fail on it with a 500, and only for bodies that reach it)."""
    refs = list(_refs(schema))
    if not refs:
        return None
    specification = referencing.jsonschema.specification_with(
        str(schema.get("$schema", "")), default=referencing.jsonschema.DRAFT202012
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        _BASE, specification.create_resource(schema)
    )
    resolver = registry.resolver(base_uri=_BASE)
    for ref in refs:
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            return ref
    return None


def _refs(node: Any, top: bool = True) -> Iterator[str]:
    """Every ``$ref`` string in a schema, except under a nested ``$id`` (its references
    are relative to that id; the probe in :func:`body_validator` covers those)."""
    if isinstance(node, dict):
        if not top and "$id" in node:
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for key, value in node.items():
            if key not in ("const", "enum", "examples", "default"):  # data, not schema
                yield from _refs(value, False)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item, False)


def _probe(schema: dict[str, Any]) -> Any:
    """A value that makes the validator walk into the schema's references: references of
    an object schema's properties are only followed when the property is present."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        return {name: None for name in properties}
    return None


def schema_errors(validator: Validator | None, body: Any) -> list[dict[str, str]]:
    """What ``validator`` finds wrong with ``body``, in document order: at most
    :data:`MAX_ERRORS` of ``{"path": JSON pointer ("" for the body itself), "message"}``."""
    if validator is None:
        return []
    try:
        found = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.path])
    except RecursionError:  # a body nested past what the schema's recursion can follow
        return [{"path": "", "message": "the body is nested too deeply to check"}]
    errors = []
    for error in found[:MAX_ERRORS]:
        pointer = "".join(
            "/" + str(part).replace("~", "~0").replace("/", "~1") for part in error.path
        )
        message = error.message
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 3] + "..."
        errors.append({"path": pointer, "message": message})
    return errors


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type says JSON (``application/json``, or any ``+json`` type), as
    :func:`lolo_runtime.nodes.http.parse_body` reads it."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")
