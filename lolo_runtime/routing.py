"""The wiring of a flow as a pure lookup table: no sockets, no event loop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lolo_runtime.flowfile import Edge

PortRef = tuple[str, str]
"""``(node_id, port)``."""


class RoutingTable:
    """Answers "where does an event leaving ``node.port`` go?".

    Targets keep the order their edges have in the flow file, and an edge listed twice
    delivers once.
    """

    def __init__(self, edges: Iterable[Edge]):
        targets: dict[PortRef, list[PortRef]] = {}
        for edge in edges:
            bucket = targets.setdefault((edge.source, edge.source_port), [])
            target = (edge.target, edge.target_port)
            if target not in bucket:
                bucket.append(target)
        self._targets: dict[PortRef, tuple[PortRef, ...]] = {
            source: tuple(bucket) for source, bucket in targets.items()
        }

    def targets(self, node_id: str, port: str) -> tuple[PortRef, ...]:
        return self._targets.get((node_id, port), ())

    def as_dict(self) -> Mapping[PortRef, tuple[PortRef, ...]]:
        return dict(self._targets)
