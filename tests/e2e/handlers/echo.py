"""Sends each message back as it came (text as text, binary as binary), or describes the event."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if ev["message"] == "describe":
        ctx.emit(
            "response",
            {
                "body": {
                    "path": ev["path"],
                    "query": ev["query"],
                    "node": ctx.node_id,
                    "has_peer": bool(ev["peer"]),
                    "agent": ev["headers"].get("user-agent", ""),
                }
            },
        )
    elif ev["message"] == "bye":
        ctx.emit("response", {"body": "bye", "end": True})
    else:
        ctx.log.info("echo")
        ctx.emit("response", {"body": ev["message"]})
