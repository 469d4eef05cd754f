"""Where node types come from: one registry for built-in, local and third-party types.

Third-party packages publish node types through the ``lolo_runtime.nodes`` entry-point
group (name = the type name used in flow files, value = ``module:Class``). A flow file may
also name a class directly as ``package.module:Class``. A type name registered twice is an
error, found when the registry is built, never while the app runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from lolo_runtime.errors import RegistryError
from lolo_runtime.node import Node

ENTRY_POINT_GROUP = "lolo_runtime.nodes"


@dataclass
class _Entry:
    source: str
    load: Callable[[], object]
    loaded: type[Node] | None = None


class Registry:
    """Maps type names to :class:`Node` subclasses, importing each one only when used."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, node_class: type[Node], source: str = "code") -> None:
        """Register ``node_class`` under ``name``; a name registered twice is an error."""
        self._add(name, _Entry(source, lambda: node_class))

    def register_lazy(self, name: str, target: str, source: str) -> None:
        """Register ``module:Class`` under ``name`` without importing it yet."""
        self._add(name, _Entry(source, lambda: _import_object(target)))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def resolve(self, name: str) -> type[Node]:
        """Return the node class for ``name`` (a registered name or ``module:Class``)."""
        entry = self._entries.get(name)
        if entry is None:
            if ":" in name:
                return _check_node_class(name, _import_object(name))
            raise RegistryError(f"unknown node type {name!r}{_suggest(name, self.names())}")
        if entry.loaded is None:
            node_class = _check_node_class(name, entry.load())
            if not node_class.type_name:
                node_class.type_name = name
            entry.loaded = node_class
        return entry.loaded

    def _add(self, name: str, entry: _Entry) -> None:
        existing = self._entries.get(name)
        if existing is not None:
            raise RegistryError(
                f"node type {name!r} is registered twice: "
                f"by {existing.source} and by {entry.source}"
            )
        self._entries[name] = entry

    @classmethod
    def default(cls) -> Registry:
        """The built-in ``lolo/...`` types plus every installed plugin."""
        registry = cls()
        for name, target in BUILTIN_TYPES.items():
            registry.register_lazy(name, target, "lolo-runtime (built-in)")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
            registry.register_lazy(ep.name, ep.value, f"package {dist!r}")
        return registry


BUILTIN_TYPES: dict[str, str] = {
    "lolo/api-auth": "lolo_runtime.nodes.api_auth:ApiAuthNode",
    "lolo/barrier": "lolo_runtime.nodes.barrier:BarrierNode",
    "lolo/broadcast": "lolo_runtime.nodes.broadcast:BroadcastNode",
    "lolo/crud-api": "lolo_runtime.nodes.crud:CrudApiNode",
    "lolo/function": "lolo_runtime.nodes.function:FunctionNode",
    "lolo/http-multi-trigger": "lolo_runtime.nodes.http_multi:HttpMultiTrigger",
    "lolo/http-trigger": "lolo_runtime.nodes.http:HttpTrigger",
    "lolo/static": "lolo_runtime.nodes.static:StaticNode",
    "lolo/timer-trigger": "lolo_runtime.nodes.timer:TimerTrigger",
    "lolo/websocket-trigger": "lolo_runtime.nodes.websocket:WebSocketTrigger",
}


def _import_object(target: str) -> object:
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise RegistryError(f"{target!r} is not of the form 'package.module:Class'")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import {module_name!r} for {target!r}: {exc}") from None
    except Exception as exc:
        raise RegistryError(
            f"importing {module_name!r} for {target!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise RegistryError(f"{module_name!r} has no attribute {attr_path!r}") from None
    return obj


def _check_node_class(name: str, obj: object) -> type[Node]:
    if not (isinstance(obj, type) and issubclass(obj, Node)):
        raise RegistryError(f"{name!r} is not a lolo_runtime.node.Node subclass")
    return obj


def _suggest(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (known types: {', '.join(known)})"
