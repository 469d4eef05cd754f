"""The baked-in key/value state store (``ctx.state``) and its backends."""

from __future__ import annotations

from .base import AppState, Clock, JSONValue, StateBackend, StateError
from .paths import DEFAULT_STATE_PATH, resolve_state_path
from .sqlite import SQLiteBackend

__all__ = [
    "DEFAULT_STATE_PATH",
    "AppState",
    "Clock",
    "JSONValue",
    "SQLiteBackend",
    "StateBackend",
    "StateError",
    "resolve_state_path",
]
