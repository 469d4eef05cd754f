"""The notes of flows/hello-api.yaml; each node picks its job with ``params.action``.

Notes live in ``ctx.state`` as ``note:<id>``; ``note-count`` hands out ids.
"""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "split":
        ctx.route(ev, "write" if ev["method"] == "POST" else "read")
    elif action == "list":
        keys = sorted(await ctx.state.keys("note:"), key=lambda k: int(k.split(":")[1]))
        ctx.emit("response", {"body": {"notes": [await ctx.state.get(k) for k in keys]}})
    elif action == "save":
        await save(ev, ctx)
    elif action == "read":
        note = await ctx.state.get(f"note:{ev['params']['id']}")
        if note is None:
            ctx.emit("response", {"status": 404, "body": {"error": "no such note"}})
        else:
            ctx.emit("response", {"body": note})


async def save(ev: dict[str, Any], ctx: Any) -> None:
    body = ev["body"]
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        ctx.emit("response", {"status": 400,
                              "body": {"error": 'send JSON such as {"text": "buy milk"}'}})
        return
    number = await ctx.state.incr("note-count")
    note = {"id": number, "text": body["text"], "by": ev["session"]["email"]}
    await ctx.state.set(f"note:{number}", note)
    ctx.emit("response", {"status": 201, "headers": {"location": f"/notes/{number}"},
                          "body": note})
