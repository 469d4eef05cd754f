"""The chat's memory: the last messages, kept in ``ctx.state`` so they survive a restart.

Message number ``n`` (from ``incr("history:count")``) is stored under
``history:<n % SIZE>`` as ``{"n": n, "from": <sender>, "message": <text>}``, so the
store holds at most ``SIZE`` entries and concurrent senders never overwrite each
other's slots. A newcomer gets them, oldest first, as one JSON frame right after its
connect message: ``{"history": [{"n": ..., "from": ..., "message": ...}, ...]}``
(nothing is sent while the history is empty).
"""

from __future__ import annotations

from typing import Any

SIZE = 20


async def remember(state: Any, sender: str, message: Any) -> None:
    if not isinstance(message, str):
        return  # binary messages are relayed but not kept
    n = await state.incr("history:count")
    await state.set(f"history:{n % SIZE}", {"n": n, "from": sender, "message": message})


async def recall(state: Any) -> list[dict[str, Any]]:
    entries = [await state.get(f"history:{slot}") for slot in range(SIZE)]
    return sorted((e for e in entries if e is not None), key=lambda entry: entry["n"])
