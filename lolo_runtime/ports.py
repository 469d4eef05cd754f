"""Port names as an object, so handlers can write ``ctx.input == ctx.inputs.req``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Ports:
    """An ordered set of port names, readable as attributes or items.

    ``ctx.inputs.req`` and ``ctx.inputs["req"]`` both give ``"req"``; a port named ``in``
    (a Python keyword) is reached as ``ctx.inputs["in"]``. Asking for a port the node does
    not have is an ``AttributeError``/``KeyError`` that lists the ports it does have.
    """

    __slots__ = ("_names",)

    def __init__(self, names: Iterable[str]):
        object.__setattr__(self, "_names", tuple(names))

    def __getattr__(self, name: str) -> str:
        if name in self._names:
            return name
        raise AttributeError(f"no port {name!r}; the ports are {self._describe()}")

    def __getitem__(self, name: str) -> str:
        if name in self._names:
            return name
        raise KeyError(f"no port {name!r}; the ports are {self._describe()}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ports are read-only")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ports):
            return self._names == other._names
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"Ports({', '.join(self._names)})"

    def _describe(self) -> str:
        return ", ".join(self._names) if self._names else "(none)"
