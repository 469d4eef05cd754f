"""Counts, in the state store, every event that gets past the auth node."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    await ctx.state.incr("probe:calls")
