"""What the inspector shows, read afresh each time from the graph events travel now.

:func:`collect` walks the engine's current :class:`~lolo_runtime.engine.Wiring` (which
``--reload`` replaces) and joins it with the :class:`~.meter.Meter`'s counters, which are
keyed by node id and port and so outlive any one version of the graph. Both the page's
snapshots (:func:`as_json`) and the Prometheus text (``prometheus.py``) are made from the
same :class:`Figures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lolo_runtime.node import Trigger

if TYPE_CHECKING:
    from lolo_runtime.engine import Wiring
    from lolo_runtime.inspector.meter import Meter


@dataclass(frozen=True, slots=True)
class NodeFigures:
    id: str
    name: str
    type: str
    trigger: bool
    """Starts chains from outside; it has no handler of its own to time."""
    path: str | None
    """The HTTP or WebSocket path a trigger serves."""
    calls: int
    errors: int
    seconds: float
    """Handler time summed over every call since start."""
    p50: float | None
    p99: float | None
    """Handler time quantiles over the last 30 to 60 seconds; None: no call then."""


@dataclass(frozen=True, slots=True)
class EdgeFigures:
    source: str
    port: str
    target: str
    in_port: str
    events: int


@dataclass(frozen=True, slots=True)
class SessionFigures:
    trigger: str
    path: str | None
    open: int


@dataclass(frozen=True, slots=True)
class Figures:
    app: str
    nodes: tuple[NodeFigures, ...]
    edges: tuple[EdgeFigures, ...]
    sessions: tuple[SessionFigures, ...]


def collect(app: str, wiring: Wiring, meter: Meter) -> Figures:
    """The figures of the graph ``wiring`` describes, from ``meter``'s counters."""
    nodes = []
    sessions = []
    for node in wiring.nodes.values():
        reading = meter.read(node.id)
        is_trigger = isinstance(node, Trigger)
        path = node.http_path if isinstance(node, Trigger) else None
        nodes.append(
            NodeFigures(
                node.id,
                node.config.name,
                node.config.type,
                is_trigger,
                path,
                reading.calls,
                reading.errors,
                reading.seconds,
                reading.p50,
                reading.p99,
            )
        )
        # A trigger that keeps sessions says how many are open (duck typing, so plugin
        # triggers can take part): lolo/websocket-trigger's ``open_sessions``.
        count = getattr(node, "open_sessions", None)
        if isinstance(count, int) and not isinstance(count, bool):
            sessions.append(SessionFigures(node.id, path, count))
    edges = tuple(
        EdgeFigures(source, port, target.id, in_port, meter.events(source, port))
        for (source, port), targets in wiring.targets.items()
        for target, in_port, _ in targets
    )
    return Figures(app, tuple(nodes), edges, tuple(sessions))


def as_json(figures: Figures) -> dict[str, Any]:
    """The figures as the page's snapshot (JSON-ready; times in seconds)."""
    return {
        "app": figures.app,
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "type": n.type,
                "trigger": n.trigger,
                "path": n.path,
                "calls": n.calls,
                "errors": n.errors,
                "p50": n.p50,
                "p99": n.p99,
            }
            for n in figures.nodes
        ],
        "edges": [
            {
                "source": e.source,
                "port": e.port,
                "target": e.target,
                "inPort": e.in_port,
                "events": e.events,
            }
            for e in figures.edges
        ],
        "sessions": [
            {"trigger": s.trigger, "path": s.path, "open": s.open} for s in figures.sessions
        ],
    }
