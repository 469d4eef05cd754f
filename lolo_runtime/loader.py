"""Flow loading: from a YAML file to validated, instantiated nodes and a routing table.

Every check happens here, before anything listens, and every mistake is reported as
``path:line: message``. Loading imports handler modules but opens no sockets and starts
no event loop, so ``lolo-run check`` and the tests can call it freely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lolo_runtime.envsubst import BadReference, UnsetVariable, substitute
from lolo_runtime.errors import FlowError, FlowErrors, NodeConfigError, RegistryError
from lolo_runtime.flowfile import Edge, FlowSpec, NodeSpec
from lolo_runtime.node import Node, NodeConfig, Trigger
from lolo_runtime.ports import Ports
from lolo_runtime.registry import Registry
from lolo_runtime.routing import RoutingTable
from lolo_runtime.yamlsource import LineMap, LocPath, line_at, read_yaml_file


@dataclass
class Flow:
    """A loaded flow: ready to hand to the engine."""

    path: Path
    spec: FlowSpec
    nodes: dict[str, Node]
    edges: list[Edge]
    table: RoutingTable
    env: dict[str, str]

    @property
    def app(self) -> str:
        return self.spec.app


class _Reporter:
    """Collects located errors for one file."""

    def __init__(self, path: Path, lines: LineMap):
        self.path = path
        self.lines = lines
        self.errors: list[FlowError] = []

    def line_of(self, loc: LocPath) -> int:
        return line_at(self.lines, loc)

    def add(self, loc: LocPath, message: str) -> None:
        self.errors.append(FlowError(message, self.path, self.line_of(loc)))


def load_flow(
    path: str | Path,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flow:
    """Load and validate the flow file at ``path``; raise :class:`FlowErrors` if it is wrong."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    if registry is None:
        try:
            registry = Registry.default()
        except RegistryError as exc:
            # Installed plugins clash: no flow can load until one of them goes.
            raise FlowErrors([FlowError(f"{exc}; uninstall one of them", path, 1)]) from None
    try:
        data, lines = read_yaml_file(path)
    except FlowError as error:
        raise FlowErrors([error]) from None
    report = _Reporter(path, lines)
    if not isinstance(data, dict):
        report.add((), "a flow file must be a mapping with 'app', 'nodes' and 'edges'")
        raise FlowErrors(report.errors)
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            report.add(tuple(err["loc"]), _describe(data, tuple(err["loc"]), err))
        raise FlowErrors(report.errors) from None

    env = _substituted(spec.env, environ, ("env",), report)
    nodes = _build_nodes(spec, path.parent, registry, environ, report)
    edges = _check_edges(spec, nodes, report)
    _check_paths(spec, nodes, report)
    if report.errors:
        raise FlowErrors(report.errors)
    return Flow(path, spec, nodes, edges, RoutingTable(edges), env or {})


def _describe(data: Any, loc: LocPath, err: Mapping[str, Any]) -> str:
    """Phrase one pydantic error, naming the node it concerns."""
    prefix = ""
    field_loc = loc
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        prefix = _node_label(data, loc[1]) + ": "
        field_loc = loc[2:]
    field = ".".join(str(part) for part in field_loc)
    kind = err["type"]
    if kind == "missing":
        return f"{prefix}missing required field {field!r}"
    if kind == "extra_forbidden":
        return f"{prefix}unknown field {field!r}"
    if kind == "model_type" and len(loc) == 2 and loc[0] == "nodes":
        return f"{prefix}must be a mapping with at least 'id' and 'type'"
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    return f"{prefix}{field}: {message}" if field else f"{prefix}{message}"


def _node_label(data: Any, index: int) -> str:
    try:
        node_id = data["nodes"][index]["id"]
    except (KeyError, IndexError, TypeError):
        node_id = None
    return f"node {node_id!r}" if isinstance(node_id, str) else f"node #{index + 1}"


def _substituted(
    value: Any, environ: Mapping[str, str], where: LocPath, report: _Reporter, label: str = ""
) -> Any:
    prefix = f"{label}: " if label else ""
    try:
        return substitute(value, environ, where)
    except UnsetVariable as exc:
        report.add(
            exc.where,
            f"{prefix}{_where_text(exc.where)}: environment variable "
            f"{exc.name} is not set (set it, or write ${{{exc.name}:-default}})",
        )
    except BadReference as exc:
        report.add(
            exc.where,
            f"{prefix}{_where_text(exc.where)}: {exc.text!r} is not a "
            "valid reference; write ${NAME}, ${NAME:-default}, or $$ for a literal $",
        )
    return None


def _where_text(loc: LocPath) -> str:
    if len(loc) >= 2 and loc[0] == "nodes":
        return ".".join(str(part) for part in loc[2:])
    return ".".join(str(part) for part in loc)


def _build_nodes(
    spec: FlowSpec,
    flow_dir: Path,
    registry: Registry,
    environ: Mapping[str, str],
    report: _Reporter,
) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    first_seen: dict[str, int] = {}
    for index, node_spec in enumerate(spec.nodes):
        loc: LocPath = ("nodes", index)
        label = f"node {node_spec.id!r}"
        if node_spec.id in first_seen:
            report.add(
                (*loc, "id"),
                f"duplicate node id {node_spec.id!r} "
                f"(first defined on line {first_seen[node_spec.id]})",
            )
            continue
        first_seen[node_spec.id] = report.line_of((*loc, "id"))
        try:
            node_class = registry.resolve(node_spec.type)
        except RegistryError as exc:
            report.add((*loc, "type"), f"{label}: {exc}")
            continue
        node = _instantiate(
            node_class, node_spec, loc, flow_dir, environ, report, spec.handler_timeout
        )
        if node is not None:
            nodes[node_spec.id] = node
    return nodes


def _instantiate(
    node_class: type[Node],
    node_spec: NodeSpec,
    loc: LocPath,
    flow_dir: Path,
    environ: Mapping[str, str],
    report: _Reporter,
    default_timeout: float | None = None,
) -> Node | None:
    label = f"node {node_spec.id!r}"
    errors_before = len(report.errors)
    for field in ("inputs", "outputs"):
        if getattr(node_spec, field) is not None and not node_class.ports_configurable:
            fixed = getattr(node_class, field)
            kind = "in" if field == "inputs" else "out"
            report.add(
                (*loc, field),
                f"{label}: type {node_spec.type!r} has "
                + (f"fixed {kind}-ports ({', '.join(fixed)})" if fixed else f"no {kind}-ports")
                + f"; remove '{field}:'",
            )
    if node_spec.handler is not None and not node_class.accepts_handler:
        report.add((*loc, "handler"), f"{label}: type {node_spec.type!r} takes no handler")
    timeout = default_timeout
    if "timeout" in node_spec.model_fields_set:
        timeout = node_spec.timeout
        if not node_class.accepts_handler:
            report.add(
                (*loc, "timeout"),
                f"{label}: type {node_spec.type!r} takes no "
                "timeout (only nodes that run a handler do)",
            )
    raw_params = _substituted(node_spec.params, environ, (*loc, "params"), report, label)
    if len(report.errors) > errors_before:
        return None
    try:
        params = node_class.Params.model_validate(raw_params)
    except ValidationError as exc:
        for err in exc.errors():
            field_loc = ("params", *err["loc"])
            field = ".".join(str(part) for part in field_loc)
            if err["type"] == "missing":
                message = f"missing required param {'.'.join(map(str, err['loc']))!r}"
            elif err["type"] == "extra_forbidden":
                message = f"unknown param {'.'.join(map(str, err['loc']))!r}"
            else:
                message = f"{field}: {str(err['msg']).removeprefix('Value error, ')}"
                if err["type"] not in ("extra_forbidden", "missing") and "input" in err:
                    message += f" (got {err['input']!r:.60})"
            report.add((*loc, *field_loc), f"{label}: {message}")
        return None
    config = NodeConfig(
        id=node_spec.id,
        type=node_spec.type,
        name=node_spec.name or node_spec.id,
        params=params,
        inputs=Ports(node_spec.inputs if node_spec.inputs is not None else node_class.inputs),
        outputs=Ports(node_spec.outputs if node_spec.outputs is not None else node_class.outputs),
        handler=node_spec.handler,
        flow_dir=flow_dir,
        timeout=timeout,
    )
    try:
        return node_class(config)
    except NodeConfigError as exc:
        at: LocPath = tuple(exc.field.split(".")) if exc.field else ()
        report.add((*loc, *at), f"{label}: {exc.message}")
    except Exception as exc:
        report.add(
            loc, f"{label}: type {node_spec.type!r} failed to build: {type(exc).__name__}: {exc}"
        )
    return None


RESERVED_PREFIX = "/_lolo/"
"""URL paths the runtime serves itself; no trigger may claim one."""


def _check_paths(spec: FlowSpec, nodes: Mapping[str, Node], report: _Reporter) -> None:
    """Triggers share the app's port, so each URL path may have only one of them."""
    claimed: dict[str, tuple[str, str]] = {}
    visited: set[str] = set()
    for index, node_spec in enumerate(spec.nodes):
        node = nodes.get(node_spec.id)
        if node_spec.id in visited:
            continue  # a duplicate id, reported already; ``node`` is the first one
        visited.add(node_spec.id)
        for path in node.http_paths if isinstance(node, Trigger) else []:
            if path == RESERVED_PREFIX.rstrip("/") or path.startswith(RESERVED_PREFIX):
                report.add(
                    ("nodes", index, "params", "path"),
                    f"node {node_spec.id!r}: path {path!r} is under {RESERVED_PREFIX}, which "
                    "the runtime keeps for its own routes (/_lolo/health, "
                    "/_lolo/openapi.json)",
                )
                continue
            # ``/users/:id`` and ``/users/:name`` match the same requests: the second
            # could never be reached, so they count as one path.
            shape = "/".join(":" if part.startswith(":") else part for part in path.split("/"))
            if shape in claimed:
                other_id, other_path = claimed[shape]
                same = (
                    "is already served"
                    if other_path == path
                    else f"matches the same requests as {other_path!r}, served"
                )
                report.add(
                    ("nodes", index, "params", "path"),
                    f"node {node_spec.id!r}: path {path!r} {same} by node {other_id!r}",
                )
            else:
                claimed[shape] = (node_spec.id, path)


def _check_edges(spec: FlowSpec, nodes: Mapping[str, Node], report: _Reporter) -> list[Edge]:
    declared = {node.id for node in spec.nodes}
    edges: list[Edge] = []
    for index, edge in enumerate(spec.parsed_edges()):
        loc: LocPath = ("edges", index)
        ok = True
        for node_id, port, direction in (
            (edge.source, edge.source_port, "out"),
            (edge.target, edge.target_port, "in"),
        ):
            if node_id not in declared:
                report.add(
                    loc,
                    f"edge {str(edge)!r}: unknown node {node_id!r} "
                    f"(nodes: {', '.join(sorted(declared))})",
                )
                ok = False
                continue
            node = nodes.get(node_id)
            if node is None:
                ok = False  # its own error is already reported
                continue
            ports = node.out_ports if direction == "out" else node.in_ports
            if port not in ports:
                report.add(
                    loc,
                    f"edge {str(edge)!r}: node {node_id!r} has no {direction}-port "
                    f"{port!r} ({direction}-ports: {', '.join(ports) or '(none)'})",
                )
                ok = False
        if ok:
            edges.append(edge)
    return edges
