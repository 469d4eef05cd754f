"""The shape of a flow file, as pydantic models; also the source of its JSON Schema."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
EDGE_PATTERN = (
    r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)\s*->\s*"
    r"([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)\s*$"
)
_EDGE_RE = re.compile(EDGE_PATTERN)

DEFAULT_HANDLER_TIMEOUT = 30.0
"""Why 30 s: far longer than any handler a person waits on (a chat message, an API call)
should take, yet shorter than the 60 s after which proxies (nginx, load balancers) give up
on a request, so a stuck handler is cut, logged and answered by us, not by a proxy."""


@dataclass(frozen=True)
class Edge:
    """A wire from an out-port to an in-port."""

    source: str
    source_port: str
    target: str
    target_port: str

    @classmethod
    def parse(cls, text: str) -> Edge:
        match = _EDGE_RE.match(text)
        if match is None:
            raise ValueError(f"edge {text!r} must read 'node.port -> node.port'")
        return cls(*match.groups())

    def __str__(self) -> str:
        return f"{self.source}.{self.source_port} -> {self.target}.{self.target_port}"


def _check_edge(text: str) -> str:
    Edge.parse(text)
    return text


EdgeText = Annotated[
    str,
    AfterValidator(_check_edge),
    WithJsonSchema(
        {"type": "string", "pattern": EDGE_PATTERN, "examples": ["ws.message -> chat.in"]}
    ),
]


class NodeSpec(BaseModel):
    """One entry of ``nodes:``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=NAME_PATTERN, description="Unique id, used in edges and logs.")
    type: str = Field(
        min_length=1,
        description="A registered node type such as 'lolo/function', or 'package.module:Class'.",
    )
    name: str | None = Field(None, description="Display name; defaults to the id.")
    description: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="The node type's parameters; ${VAR} is substituted."
    )
    inputs: list[str] | None = Field(
        None, description="In-port names, for node types that let you choose them."
    )
    outputs: list[str] | None = Field(
        None, description="Out-port names, for node types that let you choose them."
    )
    handler: str | None = Field(
        None, description="Function nodes: path of the Python module, relative to this file."
    )
    timeout: float | None = Field(
        None,
        gt=0,
        description="Function nodes: seconds one handler call may take before it "
        "is cancelled (and logged at ERROR); overrides the flow's handler_timeout. "
        "null: no limit.",
    )

    @field_validator("inputs", "outputs")
    @classmethod
    def _port_names(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        pattern = re.compile(NAME_PATTERN)
        for name in names:
            if not pattern.match(name):
                raise ValueError(f"port name {name!r} must match {NAME_PATTERN}")
        if len(set(names)) != len(names):
            raise ValueError("port names must be unique")
        return names


class FlowSpec(BaseModel):
    """A whole flow file."""

    model_config = ConfigDict(extra="forbid", title="lolo-runtime flow file")

    app: str = Field(pattern=NAME_PATTERN, description="The app's name; namespaces its state.")
    description: str | None = None
    port: int | None = Field(
        None, ge=1, le=65535, description="Default port; --port and $PORT win over it."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="App variables, seen by handlers as ctx.env."
    )
    handler_timeout: float | None = Field(
        DEFAULT_HANDLER_TIMEOUT,
        gt=0,
        description="Seconds one call of a function node's "
        "handler may take before it is cancelled and logged at ERROR (a node's own "
        "'timeout:' wins). null: no limit.",
    )
    nodes: list[NodeSpec] = Field(min_length=1)
    edges: list[EdgeText] = Field(
        default_factory=list, description="Wires, each 'node.out-port -> node.in-port'."
    )

    @field_validator("app")
    @classmethod
    def _app_not_reserved(cls, app: str) -> str:
        if app.startswith("__"):
            raise ValueError("app names starting with '__' are reserved for lolo-runtime")
        return app

    def parsed_edges(self) -> list[Edge]:
        return [Edge.parse(text) for text in self.edges]
