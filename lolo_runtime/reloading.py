"""``--reload``: watch the flow file and its handler modules; swap good edits in."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lolo_runtime.runtime import Runtime


async def watch_and_reload(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Run until cancelled (or ``stopping`` is set): reload ``runtime`` on each edit."""
    raise NotImplementedError("--reload is being built (issue 12)")
