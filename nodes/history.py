"""The chat's memory: the last messages, kept in ``ctx.state`` so they survive a restart.

How many is the app variable ``HISTORY_SIZE`` (``env:`` in the flow file; 0 keeps none).
The history is one bounded list in the store, ``history`` (``ctx.state.push`` with
``keep``): ``{"n": <message number>, "from": <sender>, "message": <text>}``, oldest first.
This module keeps a copy in memory, loaded by Handle Messages' ``setup``, so a message
costs one small write (the new entry, not the whole list) and a newcomer no read at all.
One process owns the copy; flows/chat-cluster.yaml reads the list from the store instead,
so it works on any number of processes.

A newcomer gets the list as one JSON frame right after its connect message:
``{"history": [...]}`` (nothing is sent while the history is empty).
"""

from __future__ import annotations

from typing import Any

from lolo_runtime.state import StateError

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
    entry = {"n": n, "from": sender, "message": message}
    recent.append(entry)
    del recent[:-slots]
    try:
        await ctx.state.push("history", entry, keep=slots)
    except StateError as error:
        if "stored with set()" not in str(error):
            raise
        # A store written by an older version holds the history as one plain value:
        # turn it into a list once.
        await ctx.state.delete("history")
        for kept in list(recent):
            await ctx.state.push("history", kept, keep=slots)


def recall() -> list[dict[str, Any]]:
    return list(recent)
