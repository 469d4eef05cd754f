"""Affirm Connection: answers a new client with its connect message, then the history."""

from __future__ import annotations

from typing import Any

import history


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.log.info("client has connected")
    ctx.emit("response", ev)
    past = history.recall()
    if past:
        ctx.emit("response", {"body": {"history": past}})
