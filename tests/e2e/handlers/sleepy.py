"""A handler that takes its time: logs, then sleeps as long as the message says."""

from __future__ import annotations

import asyncio
from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    await ctx.state.set("last", ev["message"])
    ctx.log.info("sleeping")
    await asyncio.sleep(float(ev["message"]))
    ctx.log.info("woke up")
