"""A hand-written auth node: decides by the ``door`` query parameter."""

from __future__ import annotations

from typing import Any

from lolo_runtime.errors import Reject


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    door = ev["query"].get("door")
    if door == "reject":
        raise Reject(403, "not this door")
    if door == "crash":
        raise RuntimeError("gatekeeper bug")
    if door == "answer":
        ctx.emit("response", {"status": 429, "body": "come back later"})
        return
    ev["body"] = {"welcome": door}
    ctx.route(ev)
