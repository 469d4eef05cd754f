"""A handler module whose ``setup`` forgot the ``ctx`` argument."""

from __future__ import annotations

from typing import Any


def setup() -> None:
    pass


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.route(ev, "out")
