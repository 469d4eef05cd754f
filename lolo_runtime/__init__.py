"""lolo-runtime: run Lolo-style apps from a YAML flow file."""

from __future__ import annotations

__version__ = "0.1.0"
