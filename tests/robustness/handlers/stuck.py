"""A handler that hangs on demand: the message "hang" awaits something that never comes."""

from __future__ import annotations

import asyncio
from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if ctx.input == "close":
        ctx.log.info(f"close chain ran for {ev['sessionId']}")
        return
    if ctx.input == "req":
        ctx.emit("response", {"body": "welcome"})
        return
    message = ev.get("message")
    if ev.get("method") not in (None, "GET") or message is None:
        message = ev.get("query", {}).get("do", "")
    if message == "hang":
        await asyncio.Event().wait()  # never set
    if message == "own-timeout":
        raise TimeoutError("the handler's own timeout")
    ctx.emit("response", {"body": f"echo: {message}"})
