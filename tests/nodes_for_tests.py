"""Build engine-ready nodes from plain Python callables, without a flow file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lolo_runtime.flowfile import Edge
from lolo_runtime.node import Node, NodeConfig, NoParams
from lolo_runtime.ports import Ports


class CallableNode(Node):
    """A node whose behaviour is whatever function the test hands it."""

    def __init__(self, config: NodeConfig, func: Callable[..., Any]):
        super().__init__(config)
        self.handle = func  # type: ignore[method-assign]


def make_node(
    node_id: str,
    func: Callable[..., Any],
    inputs: Sequence[str] = ("in",),
    outputs: Sequence[str] = ("out",),
) -> CallableNode:
    config = NodeConfig(
        id=node_id,
        type="test/callable",
        name=node_id,
        params=NoParams(),
        inputs=Ports(inputs),
        outputs=Ports(outputs),
        handler=None,
        flow_dir=Path("."),
    )
    return CallableNode(config, func)


def edges(*texts: str) -> list[Edge]:
    return [Edge.parse(text) for text in texts]


class RecordingInvocation:
    """Stands where a trigger's connection would be: records what the chain emits."""

    def __init__(self, session_id: str = "s1"):
        self.session_id = session_id
        self.emitted: list[tuple[str, Any]] = []
        self.failures: list[tuple[str, BaseException]] = []

    def emit(self, name: str, payload: Any = None) -> None:
        self.emitted.append((name, payload))

    def fail(self, node_id: str, error: BaseException) -> None:
        self.failures.append((node_id, error))
