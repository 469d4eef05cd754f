"""The chat's memory: the last messages, kept in ``ctx.state`` so they survive a restart.

How many is the app variable ``HISTORY_SIZE`` (``env:`` in the flow file; 0 keeps none).
Message number ``n`` (from ``incr("history:count")``) is stored under
``history:<n % size>`` as ``{"n": n, "from": <sender>, "message": <text>}``, so the store
holds at most ``size`` entries and concurrent senders never overwrite each other's
slots. A newcomer gets them, oldest first, as one JSON frame right after its connect
message: ``{"history": [{"n": ..., "from": ..., "message": ...}, ...]}`` (nothing is sent
while the history is empty).
"""

from __future__ import annotations

import asyncio
from typing import Any


def size(ctx: Any) -> int:
    return int(ctx.env.get("HISTORY_SIZE", "20"))


async def remember(ctx: Any, sender: str, message: Any) -> None:
    slots = size(ctx)
    if slots <= 0 or not isinstance(message, str):
        return  # binary messages are relayed but not kept
    n = await ctx.state.incr("history:count")
    await ctx.state.set(f"history:{n % slots}", {"n": n, "from": sender, "message": message})


async def recall(ctx: Any) -> list[dict[str, Any]]:
    # Asked all at once, the reads share one trip to the store's thread.
    entries = await asyncio.gather(*(ctx.state.get(f"history:{i}") for i in range(size(ctx))))
    return sorted((e for e in entries if e is not None), key=lambda entry: entry["n"])
