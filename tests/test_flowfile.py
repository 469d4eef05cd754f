"""The flow file's models (FlowSpec, NodeSpec, Edge) and the JSON Schema made from them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lolo_runtime.flowfile import EDGE_PATTERN, NAME_PATTERN, Edge, FlowSpec, NodeSpec
from lolo_runtime.nodes.websocket import WebSocketParams
from lolo_runtime.registry import Registry
from lolo_runtime.schema import SCHEMA_ID, flow_json_schema

TESTS = Path(__file__).resolve().parent
GOOD = sorted((TESTS / "flows" / "good").glob("*.yaml"))
CHAT = TESTS.parent / "flows" / "chat.yaml"
BROKEN = TESTS / "flows" / "broken"

NAMES = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s)


# --- Edge ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "edge"),
    [
        ("ws.req -> chat.in", Edge("ws", "req", "chat", "in")),
        ("ws.req->chat.in", Edge("ws", "req", "chat", "in")),
        ("  a-1.out_2   ->   _b.x-y  ", Edge("a-1", "out_2", "_b", "x-y")),
        (
            "process-request.msg -> handle-messages.in",
            Edge("process-request", "msg", "handle-messages", "in"),
        ),
    ],
)
def test_edge_parses(text: str, edge: Edge) -> None:
    assert Edge.parse(text) == edge


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ws.req",
        "ws.req => chat.in",
        "ws.req - > chat.in",
        "ws -> chat.in",
        "ws.req -> chat",
        "ws.req.x -> chat.in",
        "1ws.req -> chat.in",
        "ws.req -> chat.in -> other.in",
        "ws.req, chat.in",
        "ws .req -> chat.in",
        "ws.réq -> chat.in",
    ],
)
def test_edge_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"must read 'node\.port -> node\.port'"):
        Edge.parse(text)


def test_edge_is_a_value() -> None:
    edge = Edge.parse("a.b -> c.d")
    assert str(edge) == "a.b -> c.d"
    assert {edge, Edge("a", "b", "c", "d")} == {edge}
    with pytest.raises(AttributeError):
        edge.source = "x"  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(NAMES, NAMES, NAMES, NAMES)
def test_edge_round_trips(a: str, b: str, c: str, d: str) -> None:
    edge = Edge(a, b, c, d)
    assert Edge.parse(str(edge)) == edge
    assert re.match(EDGE_PATTERN, str(edge))


# --- NodeSpec and FlowSpec -------------------------------------------------------------


def test_node_defaults() -> None:
    node = NodeSpec.model_validate({"id": "ws", "type": "lolo/websocket-trigger"})
    assert (node.name, node.description, node.params) == (None, None, {})
    assert (node.inputs, node.outputs, node.handler) == (None, None, None)


def test_node_empty_port_lists_are_kept() -> None:
    node = NodeSpec.model_validate({"id": "f", "type": "lolo/function", "outputs": []})
    assert node.outputs == []


def errors_of(model: type[FlowSpec] | type[NodeSpec], data: Any) -> list[tuple[Any, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(err["loc"], err["type"]) for err in caught.value.errors()]


@pytest.mark.parametrize(
    ("data", "loc", "kind"),
    [
        ({"type": "x"}, ("id",), "missing"),
        ({"id": "a"}, ("type",), "missing"),
        ({"id": "a", "type": ""}, ("type",), "string_too_short"),
        ({"id": "a b", "type": "x"}, ("id",), "string_pattern_mismatch"),
        ({"id": "9a", "type": "x"}, ("id",), "string_pattern_mismatch"),
        ({"id": "a", "type": "x", "param": {}}, ("param",), "extra_forbidden"),
        ({"id": "a", "type": "x", "params": []}, ("params",), "dict_type"),
        ({"id": "a", "type": "x", "inputs": "req"}, ("inputs",), "list_type"),
        ({"id": "a", "type": "x", "inputs": ["a", "a"]}, ("inputs",), "value_error"),
        ({"id": "a", "type": "x", "outputs": ["my port"]}, ("outputs",), "value_error"),
        ({"id": "a", "type": "x", "handler": 3}, ("handler",), "string_type"),
    ],
)
def test_node_refuses(data: dict[str, Any], loc: tuple[Any, ...], kind: str) -> None:
    assert (loc, kind) in errors_of(NodeSpec, data)


MINIMAL: dict[str, Any] = {
    "app": "chat",
    "nodes": [{"id": "ws", "type": "lolo/websocket-trigger", "params": {"path": "/s"}}],
}


def test_flow_defaults() -> None:
    spec = FlowSpec.model_validate(MINIMAL)
    assert (spec.description, spec.port, spec.env, spec.edges) == (None, None, {}, [])
    assert spec.parsed_edges() == []


def test_flow_parsed_edges_keep_their_order() -> None:
    spec = FlowSpec.model_validate({**MINIMAL, "edges": ["ws.req -> a.in", "ws.close->b.x"]})
    assert spec.parsed_edges() == [Edge("ws", "req", "a", "in"), Edge("ws", "close", "b", "x")]
    assert spec.edges == ["ws.req -> a.in", "ws.close->b.x"]


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"app": None}, ("app",), "string_type"),
        ({"app": "my app"}, ("app",), "string_pattern_mismatch"),
        ({"port": 0}, ("port",), "greater_than_equal"),
        ({"port": 65536}, ("port",), "less_than_equal"),
        ({"port": "many"}, ("port",), "int_parsing"),
        ({"nodes": []}, ("nodes",), "too_short"),
        ({"nodes": {"ws": {}}}, ("nodes",), "list_type"),
        ({"env": {"RETRIES": 3}}, ("env", "RETRIES"), "string_type"),
        ({"env": ["A=1"]}, ("env",), "dict_type"),
        ({"edges": "ws.req -> a.in"}, ("edges",), "list_type"),
        ({"edges": ["ws.req => a.in"]}, ("edges", 0), "value_error"),
        ({"edge": []}, ("edge",), "extra_forbidden"),
    ],
)
def test_flow_refuses(change: dict[str, Any], loc: tuple[Any, ...], kind: str) -> None:
    assert (loc, kind) in errors_of(FlowSpec, {**MINIMAL, **change})


def test_flow_missing_keys() -> None:
    found = errors_of(FlowSpec, {})
    assert (("app",), "missing") in found
    assert (("nodes",), "missing") in found


# --- JSON Schema -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return flow_json_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_names_itself(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert set(schema["required"]) == {"app", "nodes"}
    assert set(schema["properties"]) == {
        "app",
        "description",
        "port",
        "env",
        "handler_timeout",
        "nodes",
        "edges",
    }


def test_schema_offers_every_registered_type(schema: dict[str, Any]) -> None:
    node = schema["$defs"]["NodeSpec"]
    names = Registry.default().names()
    assert {"lolo/function", "lolo/websocket-trigger"} <= set(names)
    assert node["properties"]["type"]["examples"] == names
    ruled = {rule["if"]["properties"]["type"]["const"] for rule in node["allOf"]}
    assert ruled == set(names)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# The loader substitutes ${VAR} before it validates params, so an editor must accept
# "${PORT_LIMIT:-20}" where the param itself is a number or has a pattern.
@pytest.mark.parametrize("path", [*GOOD, CHAT], ids=lambda p: p.name)
def test_schema_accepts_good_flows(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    errors = [e.message for e in validator.iter_errors(load(path))]
    assert errors == []


# Mistakes an editor can flag from the schema alone (the rest need the loader).
SCHEMA_CATCHES = [
    "missing_app.yaml",
    "unknown_top_level_key.yaml",
    "no_nodes.yaml",
    "port_out_of_range.yaml",
    "node_missing_type.yaml",
    "node_not_a_mapping.yaml",
    "bad_node_id.yaml",
    "malformed_edge.yaml",
    "edge_not_a_string.yaml",
    "missing_required_param.yaml",
    "wrong_typed_param.yaml",
    "unknown_param.yaml",
    "bad_websocket_path.yaml",
    "handler_on_trigger.yaml",
    "inputs_on_fixed_ports.yaml",
    "function_without_handler.yaml",
]


@pytest.mark.parametrize("name", SCHEMA_CATCHES)
def test_schema_flags_broken_flows(validator: jsonschema.Draft202012Validator, name: str) -> None:
    assert list(validator.iter_errors(load(BROKEN / name))), f"the schema lets {name} through"


def test_schema_describes_the_websocket_params(schema: dict[str, Any]) -> None:
    rules = {
        r["if"]["properties"]["type"]["const"]: r["then"]
        for r in schema["$defs"]["NodeSpec"]["allOf"]
    }
    params = rules["lolo/websocket-trigger"]["properties"]["params"]
    assert params["required"] == ["path"]
    assert params["additionalProperties"] is False
    assert set(params["properties"]) == set(WebSocketParams.model_fields)
    assert {"path", "max_message_bytes", "compression", "origins"} <= set(params["properties"])
    assert rules["lolo/function"]["required"] == ["handler"]
    assert rules["lolo/function"]["properties"]["params"]["additionalProperties"] is True
