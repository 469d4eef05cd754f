"""Exceptions shared by the loader, the engine and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class LoloError(Exception):
    """Base class for every error lolo-runtime raises on purpose."""


class UsageError(LoloError, ValueError):
    """Bad input from the person running lolo-run: an option, a value given to a command
    (an email that is not one...). The CLI reports it in one line and exits 2."""


class FlowError(LoloError):
    """One mistake in a flow file, located as ``path:line``."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line

    def located(self, path: Path, line: int | None) -> FlowError:
        """Return a copy that points at ``path:line`` unless it already points somewhere."""
        if self.path is not None:
            return self
        return FlowError(self.message, path, line)

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{self.path}:{self.line or 1}: {self.message}"


class FlowErrors(LoloError):
    """Every mistake found in one flow file; the loader reports them all at once."""

    def __init__(self, errors: Iterable[FlowError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class NodeConfigError(LoloError):
    """Raised by a node type while it is being built from the flow file.

    ``field`` names the node's field at fault (``"handler"``, ``"params.path"``) so the
    loader can point at its line.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class RegistryError(LoloError):
    """A node type that cannot be registered or found."""


class RouteError(LoloError):
    """A handler routed an event out of a port its node does not have."""


class ChannelError(LoloError):
    """A channel operation that cannot be done: a bad channel name, or a session that is
    not a client connected to this process trying to join."""


class HandlerTimeout(LoloError):
    """A handler call ran past its node's timeout and was cancelled."""


class Reject(LoloError):
    """Raised in a ``req`` chain to refuse a connection with an HTTP status.

    Any other exception in a ``req`` chain refuses it with 500.
    """

    def __init__(self, status: int, reason: str = ""):
        super().__init__(f"{status} {reason}".strip())
        self.status = status
        self.reason = reason
