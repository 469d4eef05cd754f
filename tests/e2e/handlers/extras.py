"""Test-only handlers wired beside the chat: one that raises, one that is slow."""

from __future__ import annotations

import asyncio
from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    message = ev["message"]
    if message == "boom":
        raise ValueError("boom requested")
    if message == "slow":
        await asyncio.sleep(1.0)
        ctx.log.info("slow handler finished")
