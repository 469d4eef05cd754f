"""Sends every message back to its sender, text as text and binary as binary."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.emit("response", {"body": ev["message"]})
