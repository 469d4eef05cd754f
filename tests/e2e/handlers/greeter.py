"""Greets whoever got past the gatekeeper, and counts them in the state store."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    await ctx.state.incr("greeted")
    ctx.emit("response", ev)
