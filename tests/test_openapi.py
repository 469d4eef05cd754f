"""The OpenAPI document: built from loaded flows (no sockets), checked by
openapi-spec-validator, and printed by ``lolo-run openapi``."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from openapi_spec_validator import validate

from lolo_runtime.loader import load_flow
from lolo_runtime.node import Node
from lolo_runtime.openapi import build_document, openapi_path
from tests.support import ROOT, lolo_run_command

FLOWS = ROOT / "flows"
KEY_ALTERNATIVES: list[dict[str, list[str]]] = [
    {"apiKeyHeader": []},
    {"apiKeyQuery": []},
    {"bearer": []},
]


class DescribedNode(Node):
    """A node type of a plugin's: not a trigger, no base class for docs, yet it has
    ``openapi_paths``; the document takes it in by that method alone."""

    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        return {"/plugin": {"get": {"responses": {"200": {"description": "ok"}}}}}


def document_of(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    document = build_document(load_flow(path))
    validate(document)
    return document


@pytest.mark.parametrize(
    ("pattern", "path", "names"),
    [
        ("/", "/", []),
        ("/notes", "/notes", []),
        ("/users/:id", "/users/{id}", ["id"]),
        ("/a/:x/b/:y_2", "/a/{x}/b/{y_2}", ["x", "y_2"]),
        ("/files/*", "/files/{rest}", ["rest"]),
    ],
)
def test_route_patterns_become_openapi_paths(pattern: str, path: str, names: list[str]) -> None:
    converted, parameters = openapi_path(pattern)
    assert converted == path
    assert [(p["name"], p["in"], p["required"]) for p in parameters] == [
        (name, "path", True) for name in names
    ]


def test_the_crud_example_documents_both_resources_and_the_greeting() -> None:
    document = build_document(load_flow(FLOWS / "crud-api.yaml"))
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "crud-api"
    assert document["info"]["description"].startswith("Notes behind an API key")
    paths = document["paths"]
    methods = {path: sorted(k for k in item if k != "parameters") for path, item in paths.items()}
    assert methods == {
        "/hello/{name}": ["get"],
        "/notes": ["get", "post"],
        "/notes/{id}": ["delete", "get", "patch", "put"],
        "/tags": ["get", "post"],
        "/tags/{id}": ["delete", "get"],
    }
    (id_param,) = paths["/notes/{id}"]["parameters"]
    assert id_param == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    create = paths["/notes"]["post"]
    assert create["security"] == KEY_ALTERNATIVES
    assert sorted(create["responses"]) == ["201", "400", "401", "403", "413", "415"]
    sent = create["requestBody"]["content"]["application/json"]["schema"]
    assert sent["required"] == ["title"] and sent["additionalProperties"] is False
    assert sent["properties"]["title"] == {"type": "string", "minLength": 1, "maxLength": 200}
    stored = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert stored["required"] == ["id", "title"]
    assert stored["properties"]["id"]["type"] == "integer"
    patch = paths["/notes/{id}"]["patch"]
    assert "required" not in patch["requestBody"]["content"]["application/json"]["schema"]
    assert sorted(patch["responses"]) == ["200", "400", "401", "403", "404", "413", "415"]
    assert sorted(paths["/notes"]["get"]["responses"]) == ["200", "400", "401"]
    assert sorted(paths["/tags/{id}"]["delete"]["responses"]) == ["204", "400", "404"]
    assert "security" not in paths["/tags"]["post"]
    assert paths["/tags"]["post"]["x-lolo-node"] == "tags"
    assert paths["/hello/{name}"]["get"]["operationId"] == "hello-get"
    assert set(document["components"]["securitySchemes"]) == {
        "apiKeyHeader",
        "apiKeyQuery",
        "bearer",
    }


def test_a_key_checked_on_some_chains_only_is_documented_as_optional() -> None:
    # hello-api's /notes trigger feeds a function that sends writes on to lolo/api-auth.
    document = build_document(load_flow(FLOWS / "hello-api.yaml"))
    validate(document)
    notes = document["paths"]["/notes"]
    assert notes["post"]["security"] == [*KEY_ALTERNATIVES, {}]
    assert notes["post"]["responses"]["401"]["description"] == "No valid API key"
    assert "403" not in notes["post"]["responses"]  # the auth node does not enforce roles
    assert "security" not in document["paths"]["/hello/{name}"]["get"]
    assert "security" not in document["paths"]["/notes/{id}"]["get"]


def test_a_trigger_wired_straight_to_api_auth_needs_a_key(tmp_path: Path) -> None:
    document = document_of(
        tmp_path,
        """\
        app: guarded
        nodes:
          - {id: api, type: lolo/http-trigger, params: {path: /things, methods: [GET, POST]}}
          - {id: auth, type: lolo/api-auth, params: {authorize: true}}
        edges:
          - api.out -> auth.in
        """,
    )
    things = document["paths"]["/things"]
    assert things["get"]["security"] == KEY_ALTERNATIVES
    assert "403" not in things["get"]["responses"]
    assert things["post"]["responses"]["403"]["description"] == "A read-only API key"
    assert "requestBody" in things["post"] and "requestBody" not in things["get"]


def test_an_http_trigger_without_methods_documents_the_usual_five(tmp_path: Path) -> None:
    document = document_of(
        tmp_path,
        """\
        app: open
        nodes:
          - {id: files, type: lolo/http-trigger, params: {path: "/files/:owner/*"}}
        """,
    )
    item = document["paths"]["/files/{owner}/{rest}"]
    assert [p["name"] for p in item["parameters"]] == ["owner", "rest"]
    assert sorted(k for k in item if k != "parameters") == ["delete", "get", "patch", "post", "put"]
    assert "default" in item["get"]["responses"]  # the chain answers what it likes
    assert "components" not in document


def test_any_node_with_openapi_paths_takes_part(tmp_path: Path) -> None:
    document = document_of(
        tmp_path,
        """\
        app: plugged
        nodes:
          - {id: described, type: "tests.test_openapi:DescribedNode"}
          - {id: page, type: lolo/static, params: {path: /, dir: .}}
        """,
    )
    assert document["paths"] == {
        "/plugin": {
            "get": {"responses": {"200": {"description": "ok"}}, "x-lolo-node": "described"}
        }
    }


@pytest.mark.parametrize("flow", sorted(FLOWS.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_flow_has_a_valid_document(flow: Path) -> None:
    document = build_document(load_flow(flow))
    validate(document)
    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for key, operation in item.items()
        if key != "parameters"
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_a_flow_without_http_routes_has_an_empty_document() -> None:
    document = build_document(load_flow(FLOWS / "chat.yaml"))
    validate(document)
    assert document["paths"] == {}


# lolo-run openapi


def lolo_openapi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*lolo_run_command(), "openapi", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_the_command_prints_the_document(tmp_path: Path) -> None:
    flow = FLOWS / "crud-api.yaml"
    done = lolo_openapi(str(flow))
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == build_document(load_flow(flow))
    written = tmp_path / "api.json"
    again = lolo_openapi(str(flow), "--output", str(written))
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert written.read_text() == done.stdout


def test_an_output_path_that_cannot_be_written_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    flow = str(FLOWS / "crud-api.yaml")
    folder = lolo_openapi(flow, "--output", str(tmp_path / "missing" / "api.json"))
    assert (folder.returncode, folder.stdout) == (1, "")
    assert folder.stderr.startswith("lolo-run openapi: cannot write ")
    assert folder.stderr.count("\n") == 1


def test_the_command_reports_a_broken_flow_and_exits_2(tmp_path: Path) -> None:
    flow = tmp_path / "broken.yaml"
    flow.write_text("app: broken\nnodes:\n  - id: n\n    type: lolo/crud-api\n    params: {}\n")
    done = lolo_openapi(str(flow))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"{flow}:5: node 'n': missing required param 'resource'\n"
    missing = lolo_openapi(str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2 and "absent.yaml" in missing.stderr
