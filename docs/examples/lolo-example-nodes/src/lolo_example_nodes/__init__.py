"""Example node types for lolo-runtime: ``example/uppercase`` and ``example/tap``."""

from __future__ import annotations

from lolo_example_nodes.tap import Tap
from lolo_example_nodes.uppercase import Uppercase

__all__ = ["Tap", "Uppercase"]
