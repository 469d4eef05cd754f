"""The chat's memory: the last messages, kept in ``ctx.state`` so they survive a restart.

How many is the app variable ``HISTORY_SIZE`` (``env:`` in the flow file; 0 keeps none).
The whole history is one state key, ``history``: a list of
``{"n": <message number>, "from": <sender>, "message": <text>}``, oldest first. This
module keeps a copy in memory, loaded by Handle Messages' ``setup``, so a message costs
one write and a newcomer no read at all. (One process owns the list: an app scaled out
to several processes would need an atomic list operation from the store instead.)

A newcomer gets the list as one JSON frame right after its connect message:
``{"history": [...]}`` (nothing is sent while the history is empty).
"""

from __future__ import annotations

from typing import Any

recent: list[dict[str, Any]] = []


def size(ctx: Any) -> int:
    return int(ctx.env.get("HISTORY_SIZE", "20"))


async def load(ctx: Any) -> None:
    recent[:] = (await ctx.state.get("history", []))[-size(ctx):] if size(ctx) > 0 else []


async def remember(ctx: Any, sender: str, message: Any) -> None:
    slots = size(ctx)
    if slots <= 0 or not isinstance(message, str):
        return  # binary messages are relayed but not kept
    n = recent[-1]["n"] + 1 if recent else 1
    recent.append({"n": n, "from": sender, "message": message})
    del recent[:-slots]
    # The list is encoded when set() is called, so concurrent senders each store a
    # complete list, and the last write holds every message.
    await ctx.state.set("history", recent)


def recall() -> list[dict[str, Any]]:
    return list(recent)
