"""Handlers of tests/e2e/flows/broadcast-probe.yaml (see there)."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if ctx.params["action"] == "after":
        # The event as it came out of the broadcast's `out`: told back to its sender.
        body = ev.get("body")
        ctx.emit(
            "response",
            {
                "body": {
                    "after": body if isinstance(body, str | dict) else repr(body),
                    "message": ev["message"] if isinstance(ev["message"], str) else None,
                    "fields": sorted(ev),
                }
            },
        )
        return
    if ctx.input == "req":
        await ctx.join("room")
        ctx.emit("response", {"body": {"connected": True, "id": ev["sessionId"]}})
        return
    message = ev["message"]
    if isinstance(message, bytes):
        ev["body"] = message
        ctx.route(ev, "quiet")
    elif message == "bare":
        ctx.route(ev, "quiet")  # no body: the broadcast node refuses it
    elif message == "json":
        ev["body"] = {"json": True, "from": ev["sessionId"]}
        ctx.route(ev, "quiet")
    elif message.startswith("loud:"):
        ev["body"] = message[len("loud:") :]
        ctx.route(ev, "loud")
    else:
        ev["body"] = message
        ctx.route(ev, "quiet")
