"""Affirm Connection: answers a new client with its connect message."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.log.info("client has connected")
    ctx.emit("response", ev)
