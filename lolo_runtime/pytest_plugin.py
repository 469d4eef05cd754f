"""pytest plugin of lolo-runtime (registered through the ``pytest11`` entry point).

Fixtures:

* ``lolo_state``: a path for a fresh SQLite state file in the test's temporary folder, for
  ``run_flow(..., state=lolo_state)``.
* ``lolo_env``: a dict for ``run_flow(..., env=lolo_env)``, starting as a copy of the process
  environment (so ``${VAR:-default}`` in flow files sees your changes only).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def lolo_state(tmp_path: Path) -> Path:
    return tmp_path / "lolo-state.sqlite3"


@pytest.fixture
def lolo_env() -> dict[str, str]:
    return dict(os.environ)
