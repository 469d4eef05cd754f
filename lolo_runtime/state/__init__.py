"""The baked-in key/value state store (``ctx.state``) and its backends."""

from __future__ import annotations

from .base import AppState, Clock, JSONValue, StateBackend, StateError
from .paths import default_state_path
from .sqlite import SQLiteBackend

__all__ = [
    "AppState",
    "Clock",
    "JSONValue",
    "SQLiteBackend",
    "StateBackend",
    "StateError",
    "default_state_path",
]
