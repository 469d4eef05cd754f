"""A handler module that fails while it is being imported."""

from __future__ import annotations

from typing import Any

RATE = 1 / 0


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.route(ev, "out")
