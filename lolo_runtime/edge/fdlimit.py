"""File descriptors: raise the soft limit at start, and keep a reserve for bad times.

Every connection is a descriptor. At start the soft ``RLIMIT_NOFILE`` is raised to the
hard limit. While serving, a few descriptors are kept back (the state store, log files,
modules imported late): a connection that would eat into them is told 503 and closed as
soon as it is accepted (and a WebSocket handshake is checked again before any app code
runs), and when ``accept`` itself fails for lack of descriptors, one spare descriptor is
given up for a moment to accept the client and tell it 503.
"""

from __future__ import annotations

import os
import sys

if sys.platform != "win32":
    import resource

RESERVED_DESCRIPTORS = 64
"""Descriptors never used for connections: the store, logs, late imports, the spare."""


def raise_descriptor_limit() -> int | None:
    """Raise the soft limit to the hard one; return the limit now in force."""
    if sys.platform == "win32":  # no RLIMIT_NOFILE
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_budget(limit: int | None) -> int | None:
    """How many connections fit under ``limit``."""
    return None if limit is None else max(limit - RESERVED_DESCRIPTORS, 0)


class SpareDescriptor:
    """One descriptor held open, to be given up when ``accept`` fails with EMFILE."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self.take()

    def take(self) -> None:
        if self._fd is None:
            try:
                self._fd = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                self._fd = None

    def release(self) -> bool:
        if self._fd is None:
            return False
        os.close(self._fd)
        self._fd = None
        return True

    def close(self) -> None:
        self.release()
