"""A handler with nothing wrong, for broken flows whose mistake lies elsewhere."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.route(ev, "out")
