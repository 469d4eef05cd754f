"""The benchmark's function nodes: H1 answers a greeting, H2 echoes the JSON it was sent."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if ctx.params["endpoint"] == "hello":
        ctx.emit("response", {"body": {"hello": ev["params"]["name"]}})
    else:
        ctx.emit("response", {"body": ev["body"]})
