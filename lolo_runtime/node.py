"""The base class of every node type: built-in, local or from a third-party package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from lolo_runtime.ports import Ports
from lolo_runtime.types import Event

if TYPE_CHECKING:
    from lolo_runtime.context import Context, SetupContext
    from lolo_runtime.edge.types import HttpRoute, WebSocketRoute
    from lolo_runtime.engine import Engine


class NoParams(BaseModel):
    """Params model of a node type that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class NodeConfig:
    """What the loader hands a node type's constructor, already validated."""

    id: str
    type: str
    name: str
    params: BaseModel
    inputs: Ports
    outputs: Ports
    handler: str | None
    flow_dir: Path
    timeout: float | None = None
    """Seconds one ``handle`` call may take (nodes that take a handler); None: no limit."""


class Node:
    """A node type. Subclass it, set the class attributes, override what you need.

    Lifecycle: ``__init__`` runs when the flow is loaded (also by ``lolo-run check``),
    so it validates and may import, but opens nothing; ``setup`` runs once when the app
    starts; ``handle`` runs for every event that reaches one of the node's in-ports;
    ``close`` runs once at shutdown, with a timeout.
    """

    type_name: ClassVar[str] = ""
    """For messages and docs only: flow files name a type by the name it is registered
    under (its entry-point name), and the registry fills this in when it is empty."""
    Params: ClassVar[type[BaseModel]] = NoParams
    """A pydantic model for ``params:``; validated at load time."""
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    ports_configurable: ClassVar[bool] = False
    """When true the flow file may choose ``inputs:``/``outputs:`` (class values: defaults)."""
    accepts_handler: ClassVar[bool] = False
    """When true the node takes a ``handler:`` module path."""
    setup_timeout: ClassVar[float] = 30.0
    close_timeout: ClassVar[float] = 5.0

    def __init__(self, config: NodeConfig):
        self.config = config
        self.id = config.id
        self.params: Any = config.params
        self.in_ports = config.inputs
        self.out_ports = config.outputs
        self.call_timeout: float | None = config.timeout if self.accepts_handler else None
        """The engine cancels a ``handle`` call that runs longer (async handlers)."""

    async def setup(self, ctx: SetupContext) -> None:
        """Run once when the app starts, before any trigger listens."""

    async def handle(self, ev: Event, ctx: Context) -> None:
        """Handle one event that arrived on ``ctx.input``."""

    async def close(self) -> None:
        """Release what ``setup`` opened."""


class TriggerHost(Protocol):
    """What a trigger sees of the running app when it starts: the engine and the port."""

    @property
    def engine(self) -> Engine: ...

    def add_http_route(self, path: str, route: HttpRoute) -> None:
        """Serve ``path`` (a pattern: ``/users/:id``, ``/files/*``) with plain HTTP."""

    def add_websocket_route(self, path: str, route: WebSocketRoute) -> None:
        """Serve ``path`` with WebSocket."""


class Trigger(Node):
    """A node that starts chains from outside: WebSocket, HTTP, timer..."""

    inputs: ClassVar[tuple[str, ...]] = ()

    @property
    def http_path(self) -> str | None:
        """The URL path this trigger serves on the app's shared port (None: it needs no
        listener); two triggers may not serve one path."""
        return None

    @property
    def http_paths(self) -> list[str]:
        """Every URL path this trigger serves (``lolo/crud-api`` serves two); the loader
        checks each against the other triggers'. Defaults to ``[http_path]``."""
        path = self.http_path
        return [] if path is None else [path]

    async def start(self, host: TriggerHost) -> None:
        """Begin accepting work (register routes, start timers). Called after every setup."""

    async def stop(self) -> None:
        """Stop accepting work; in-flight chains are drained by the runtime."""
