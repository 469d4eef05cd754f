"""Where a flow's state file lives unless the user says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIR_NAME", "default_state_path"]

STATE_DIR_NAME = ".lolo"


def default_state_path(flow_path: str | os.PathLike[str]) -> Path:
    """Return ``<flow file dir>/.lolo/<flow file stem>.sqlite3``.

    ``flows/chat.yaml`` gives ``flows/.lolo/chat.sqlite3``. The path is neither resolved nor
    created here (the backend creates the directory when it opens). The CLI lets
    ``--state PATH`` or ``$LOLO_STATE`` override it.
    """
    flow = Path(flow_path)
    return flow.parent / STATE_DIR_NAME / f"{flow.stem}.sqlite3"
