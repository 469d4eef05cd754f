"""Where the state store lives unless the user says otherwise."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_STATE_PATH", "resolve_state_path"]

DEFAULT_STATE_PATH = Path(".lolo") / "state.sqlite3"
"""Relative to the current directory. One file serves every app run from there (each app
has its own namespace) and the API keys, so ``lolo-run keys`` needs no flow file."""


def resolve_state_path(option: Path | None, environ: Mapping[str, str]) -> Path:
    """``--state PATH``, else ``$LOLO_STATE``, else :data:`DEFAULT_STATE_PATH`."""
    if option is not None:
        return option
    from_env = environ.get("LOLO_STATE")
    return Path(from_env) if from_env else DEFAULT_STATE_PATH
