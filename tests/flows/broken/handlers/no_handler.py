"""A handler module that forgot to define ``handler`` (it is spelled ``handle``)."""

from __future__ import annotations

from typing import Any


async def handle(ev: dict[str, Any], ctx: Any) -> None:
    ctx.route(ev, "out")
