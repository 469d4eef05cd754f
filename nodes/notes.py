"""The notes of flows/hello-api.yaml; each node picks its job with ``params.action``.

Notes live in ``ctx.state`` as ``note:<id>``; the counter ``note-count`` hands out ids.
"""

from __future__ import annotations

from typing import Any

USAGE = 'send JSON such as {"text": "buy milk"}, or the form text=buy+milk'


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "split":
        # Reads are public; writes go through lolo/api-auth first.
        ctx.route(ev, "write" if ev["method"] == "POST" else "read")
    elif action == "list":
        await list_notes(ctx)
    elif action == "save":
        await save(ev, ctx)
    elif action == "read":
        await read(ev, ctx)
    else:
        raise ValueError(f"unknown params.action {action!r}")


async def list_notes(ctx: Any) -> None:
    keys = sorted(await ctx.state.keys("note:"), key=lambda k: int(k.split(":", 1)[1]))
    notes = [await ctx.state.get(key) for key in keys]
    ctx.emit("response", {"body": {"notes": [note for note in notes if note is not None]}})


async def read(ev: dict[str, Any], ctx: Any) -> None:
    wanted = ev["params"]["id"]
    note = None
    if wanted.isascii() and wanted.isdigit():
        note = await ctx.state.get(f"note:{int(wanted)}")
    if note is None:
        ctx.emit("response", {"status": 404, "body": {"error": f"no note {wanted}"}})
    else:
        ctx.emit("response", {"body": note})


async def save(ev: dict[str, Any], ctx: Any) -> None:
    body = ev["body"]
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        ctx.emit("response", {"status": 400, "body": {"error": USAGE}})
        return
    number = await ctx.state.incr("note-count")
    note = {"id": number, "text": text, "by": ev["session"]["email"]}
    await ctx.state.set(f"note:{number}", note)
    ctx.emit("response", {"status": 201, "headers": {"location": f"/notes/{number}"}, "body": note})
