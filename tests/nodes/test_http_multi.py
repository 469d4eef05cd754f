"""``lolo/http-multi-trigger`` without sockets: what the loader refuses (at its line), the
body-schema checks, and the OpenAPI path items (the requests themselves are in
tests/e2e/test_http_multi_trigger.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from lolo_runtime.errors import FlowErrors, NodeConfigError
from lolo_runtime.loader import load_flow
from lolo_runtime.nodes.bodyschema import MAX_ERRORS, body_validator, is_json, schema_errors
from lolo_runtime.nodes.http_multi import HttpMultiTrigger
from lolo_runtime.openapi import SECURITY_SCHEMES, build_document
from tests.support import ROOT

HEAD = "app: multi\nnodes:\n  - id: m\n    type: lolo/http-multi-trigger\n"
"""Lines 1-4; the node's own keys start at line 5."""


def load(tmp_path: Path, node: str, edges: str = "") -> HttpMultiTrigger:
    flow = tmp_path / "flow.yaml"
    flow.write_text(HEAD + node + "edges:\n" + (edges or "  []\n"))
    loaded = load_flow(flow).nodes["m"]
    assert isinstance(loaded, HttpMultiTrigger)
    return loaded


@pytest.mark.parametrize(
    ("node", "line", "complaint"),
    [
        ("    outputs: [get, fetch]\n    params: {path: /x}\n", 5, "(not 'fetch')"),
        ("    outputs: []\n    params: {path: /x}\n", 5, "(at least one)"),
        ("    outputs: [GET]\n    params: {path: /x}\n", 5, "from get, post, put, patch, delete"),
        ("    inputs: [in]\n    params: {path: /x}\n", 5, "a trigger has no in-ports"),
        ("    params: {path: x}\n", 5, "params.path: String should match pattern"),
        ("    params: {path: '/a/*/b'}\n", 5, "'*' may only be the last segment"),
        ("    params: {path: /x, emails: [a@b.c]}\n", 5, "'emails' needs 'auth: true'"),
        ("    params: {path: /x, authorize: true}\n", 5, "'authorize' needs 'auth: true'"),
        ("    params: {path: /x, auth: true, emails: [nobody]}\n", 5, "not an email address"),
        ("    params: {path: /x, auth: true, emails: []}\n", 5, "at least 1 item"),
        ("    params: {path: /x, methods: [GET]}\n", 5, "unknown param 'methods'"),
        (
            "    outputs: [get, delete]\n    params: {path: /x, schema: {type: object}}\n",
            6,
            "'schema' checks POST, PUT and PATCH bodies, and none of them is served",
        ),
        (
            "    params:\n      path: /x\n      schema:\n        type: object\n"
            "        properties:\n          n: {type: nonsense}\n",
            10,
            "not a valid JSON Schema: 'nonsense' is not valid under any of the given schemas",
        ),
        (
            "    params:\n      path: /x\n      schema:\n        properties:\n"
            "          n: {$ref: '#/$defs/missing'}\n",
            7,
            "cannot resolve $ref '#/$defs/missing'",
        ),
        (  # deep down, where no body of the first level leads: still found at load time
            "    params:\n      path: /x\n      schema:\n        properties:\n"
            "          a:\n            items:\n              properties:\n"
            "                b: {$ref: '#/$defs/gone'}\n",
            7,
            "cannot resolve $ref '#/$defs/gone'",
        ),
    ],
)
def test_mistakes_are_flow_errors_at_their_line(
    tmp_path: Path, node: str, line: int, complaint: str
) -> None:
    with pytest.raises(FlowErrors) as caught:
        load(tmp_path, node)
    assert f"flow.yaml:{line}: node 'm': " in str(caught.value)
    assert complaint in str(caught.value)


def test_the_declared_ports_are_the_methods_served(tmp_path: Path) -> None:
    every = load(tmp_path, "    params: {path: /x}\n")
    assert every.methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    some = load(tmp_path, "    outputs: [post, get]\n    params: {path: /x}\n")
    assert some.methods == {"GET", "POST"}
    assert some.max_body_bytes == 1024 * 1024


# -- body schemas ---------------------------------------------------------------------------


def test_schema_errors_are_json_pointers_in_document_order() -> None:
    validator = body_validator(
        {
            "type": "object",
            "properties": {
                "a/b": {"type": "integer"},
                "list": {"type": "array", "items": {"type": "string"}},
                "~": {"type": "boolean"},
            },
        },
        "params.schema",
    )
    body = {"~": 1, "list": ["x", 2, "y", 3], "a/b": "no"}
    assert schema_errors(validator, body) == [
        {"path": "/a~1b", "message": "'no' is not of type 'integer'"},
        {"path": "/list/1", "message": "2 is not of type 'string'"},
        {"path": "/list/3", "message": "3 is not of type 'string'"},
        {"path": "/~0", "message": "1 is not of type 'boolean'"},
    ]
    assert schema_errors(validator, {"list": []}) == []
    assert schema_errors(None, "anything") == []


def test_a_body_wrong_everywhere_gets_a_bounded_answer() -> None:
    validator = body_validator({"type": "array", "items": {"type": "integer"}}, "schema")
    errors = schema_errors(validator, ["x" * 100_000] * 500)
    assert len(errors) == MAX_ERRORS
    assert all(len(error["message"]) <= 300 for error in errors)
    assert errors[0]["message"].endswith("...")


def test_a_body_nested_past_what_can_be_checked_is_a_complaint_not_a_crash() -> None:
    validator = body_validator({"type": "array", "items": {"$ref": "#"}}, "schema")
    assert schema_errors(validator, json.loads("[" * 50 + "]" * 50)) == []
    deep = json.loads("[" * 900 + "]" * 900)  # json.loads takes it; the check cannot follow
    assert schema_errors(validator, deep) == [
        {"path": "", "message": "the body is nested too deeply to check"}
    ]


def test_formats_are_checked() -> None:
    validator = body_validator({"type": "string", "format": "date"}, "schema")
    assert schema_errors(validator, "2024-02-30") != []
    assert schema_errors(validator, "2024-02-29") == []


def test_another_draft_is_used_when_the_schema_names_it() -> None:
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    assert schema_errors(body_validator(draft4, "schema"), 5) != []
    with pytest.raises(NodeConfigError) as caught:
        # exclusiveMaximum is a number from draft 6 on: a bool is a mistake in 2020-12
        body_validator({"maximum": 5, "exclusiveMaximum": True}, "params.schema")
    assert caught.value.field == "params.schema.exclusiveMaximum"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("application/jsonx", False),
        ("", False),
        (None, False),
    ],
)
def test_is_json(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected


# -- OpenAPI --------------------------------------------------------------------------------


def document(paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }


def test_openapi_paths_without_auth_or_schema(tmp_path: Path) -> None:
    node = load(tmp_path, "    outputs: [get, post]\n    params: {path: '/items/:id/*'}\n")
    paths = node.openapi_paths()
    validate(document(paths))
    [(path, item)] = paths.items()
    assert path == "/items/{id}/{rest}"
    assert [p["name"] for p in item["parameters"]] == ["id", "rest"]
    assert set(item) == {"parameters", "get", "post"}
    assert item["get"]["operationId"] == "m-get"
    assert "security" not in item["get"]
    assert set(item["post"]["responses"]) == {"default", "400", "413"}
    # Without a schema, anything the body parser takes (as for lolo/http-trigger).
    assert item["post"]["requestBody"]["content"]["application/json"] == {"schema": {}}
    assert item["post"]["responses"]["400"]["content"]["application/json"]


def test_openapi_paths_with_schema_and_auth(tmp_path: Path) -> None:
    node = load(
        tmp_path,
        "    name: Items\n    outputs: [get, put, patch, delete]\n"
        "    params:\n      path: /items\n      auth: true\n      authorize: true\n"
        "      schema: {type: object, required: [name]}\n",
    )
    paths = node.openapi_paths()
    validate(document(paths))
    item = paths["/items"]
    assert "parameters" not in item
    assert item["put"]["summary"] == "Items"
    for method in ("put", "patch"):
        body = item[method]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {
            "type": "object",
            "required": ["name"],
        }
        assert {"400", "401", "403", "413", "415"} <= set(item[method]["responses"])
    assert "requestBody" not in item["delete"]
    assert "403" in item["delete"]["responses"]  # a read key may not delete
    assert "403" not in item["get"]["responses"]  # but may read, and no allow-list here
    assert all(item[m]["security"] for m in ("get", "put", "patch", "delete"))
    # The document's copy is not the validator's schema: changing it changes nothing.
    item["put"]["requestBody"]["content"]["application/json"]["schema"]["required"] = []
    assert node.openapi_paths()["/items"]["put"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["required"] == ["name"]


def test_the_apps_document_with_multi_triggers_is_valid_openapi() -> None:
    flow = load_flow(ROOT / "tests" / "e2e" / "flows" / "multi-trigger.yaml")
    built = build_document(flow)
    validate(built)
    assert set(built["paths"]) == {"/items/{id}", "/team", "/anyone"}
    assert set(built["paths"]["/items/{id}"]) == {"parameters", "get", "post", "put", "delete"}
    assert built["paths"]["/team"]["post"]["security"]
    assert built["components"]["securitySchemes"] == SECURITY_SCHEMES
