"""The flow file's JSON Schema, with each known node type's params spelled out."""

from __future__ import annotations

from typing import Any

from lolo_runtime.errors import RegistryError
from lolo_runtime.flowfile import FlowSpec
from lolo_runtime.registry import Registry

SCHEMA_ID = "https://lolo-runtime.dev/schema/flow.json"
ENV_REFERENCE = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"}


def flow_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for flow files, for editors to complete and check."""
    registry = registry if registry is not None else Registry.default()
    schema = FlowSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    node_schema = schema["$defs"]["NodeSpec"]
    rules: list[dict[str, Any]] = []
    type_names: list[str] = []
    for name in registry.names():
        try:
            node_class = registry.resolve(name)
        except RegistryError:
            continue  # a broken plugin must not hide the rest of the schema
        type_names.append(name)
        params = node_class.Params.model_json_schema(ref_template="#/$defs/{model}")
        defs = params.pop("$defs", {})
        schema["$defs"].update(defs)
        for name_, prop in list(params.get("properties", {}).items()):
            # Any param may be written as ${VAR} and only typed after substitution.
            shown = {k: prop[k] for k in ("title", "description", "default") if k in prop}
            params["properties"][name_] = {**shown, "anyOf": [prop, ENV_REFERENCE]}
        then: dict[str, Any] = {"properties": {"params": params}}
        if not node_class.ports_configurable:
            then["not"] = {"anyOf": [{"required": ["inputs"]}, {"required": ["outputs"]}]}
        if not node_class.accepts_handler:
            then.setdefault("properties", {})["handler"] = False
        else:
            then["required"] = ["handler"]
        rules.append({"if": {"properties": {"type": {"const": name}}}, "then": then})
    node_schema["properties"]["type"]["examples"] = type_names
    node_schema["allOf"] = rules
    return schema
