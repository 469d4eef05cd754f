"""Say Hello: ``GET /hello/:name`` answers ``{"hello": name}``."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.emit("response", {"body": {"hello": ev["params"]["name"]}})
