"""Handle Messages: broadcasts a message to every client but its sender, and keeps it."""

from __future__ import annotations

from typing import Any

import history


async def setup(ctx: Any) -> None:
    await history.load(ctx)


async def close() -> None:
    await history.flush()  # what is queued reaches the store before it closes


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    connections = ev["connections"]
    sender = ev["sessionId"]
    # The tutorial's listings format the text with the recipient's id (or username), a
    # slip: recipients want to know who spoke, so the text names the sender.
    me = connections.get(sender) or {}
    name = me.get("username") or sender
    text = f"{name} says: {ev['message']}"
    for session_id, connection in list(connections.items()):
        if session_id == sender:
            continue
        try:
            connection["send"](text)
        except Exception as error:
            ctx.log.error(error)
    history.remember(ctx, name, ev["message"])
