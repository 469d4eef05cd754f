"""Routes each WebSocket event on by the port it came in through; has a ``setup``."""

from __future__ import annotations

from typing import Any

setup_calls: list[dict[str, Any]] = []


async def setup(ctx: Any) -> None:
    setup_calls.append(dict(ctx.params))


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if ctx.input == ctx.inputs.req:
        ctx.route(ev, "req")
    elif ctx.input == ctx.inputs.msg:
        ctx.route(ev, "msg")
