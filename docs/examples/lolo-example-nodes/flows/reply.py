"""Reply: sends the event's ``message`` back to the client that started the chain."""

from __future__ import annotations

from typing import Any

from lolo_runtime.context import Context


async def handler(ev: dict[str, Any], ctx: Context) -> None:
    ctx.emit("response", {"body": ev["message"]})
