"""The chat's memory: the last messages, kept in ``ctx.state`` so they survive a restart.

How many is the app variable ``HISTORY_SIZE`` (``env:`` in the flow file; 0 keeps none).
The history is one bounded list in the store, ``history`` (``ctx.state.push`` with
``keep``): ``{"n": <message number>, "from": <sender>, "message": <text>}``, oldest first.
This module keeps a copy in memory, loaded by Handle Messages' ``setup``, so a newcomer
costs no read at all. One process owns the copy; flows/chat-cluster.yaml reads the list
from the store instead, so it works on any number of processes.

Writes are behind the chat, not in its way: a message is added to the copy at once and
queued for the store, and one background task appends whatever is queued with a single
``push`` (so under load one store write carries many messages). Handle Messages' ``close``
waits for the queue at shutdown; a crash (``kill -9``) can lose the messages of the one
write in flight, a few milliseconds' worth.

A newcomer gets the list as one JSON frame right after its connect message:
``{"history": [...]}`` (nothing is sent while the history is empty).
"""

from __future__ import annotations

import asyncio
from typing import Any

from lolo_runtime.state import StateError

KEY = "history"
recent: list[dict[str, Any]] = []
queued: list[dict[str, Any]] = []  # in the copy, not yet in the store
_writer: asyncio.Task[None] | None = None
_store: Any = None  # ctx.state and ctx.log of Handle Messages' setup
_log: Any = None


def size(ctx: Any) -> int:
    return int(ctx.env.get("HISTORY_SIZE", "20"))


async def load(ctx: Any) -> None:
    global _store, _log
    _store, _log = ctx.state, ctx.log
    recent[:] = (await ctx.state.get(KEY, []))[-size(ctx) :] if size(ctx) > 0 else []


def remember(ctx: Any, sender: str, message: Any) -> None:
    global _writer
    slots = size(ctx)
    if slots <= 0 or not isinstance(message, str):
        return  # binary messages are relayed but not kept
    n = recent[-1]["n"] + 1 if recent else 1
    entry = {"n": n, "from": sender, "message": message}
    recent.append(entry)
    del recent[:-slots]
    queued.append(entry)
    if _writer is None:
        _writer = asyncio.get_running_loop().create_task(_write(slots))


async def _write(slots: int) -> None:
    """Append what is queued, in order, until nothing is; one push per round."""
    global _writer
    try:
        while queued:
            batch = queued[:1000]
            del queued[:1000]
            try:
                await _store.push(KEY, *batch, keep=slots)
            except StateError as error:
                if "stored with set()" not in str(error):
                    _log.error(f"{len(batch)} message(s) not kept in the store: {error}")
                    continue
                # A store written by an older version holds the history as one plain
                # value: turn it into a list once (the copy has everything).
                await _store.delete(KEY)
                await _store.push(KEY, *recent[-1000:], keep=slots)
    finally:
        _writer = None


async def flush() -> None:
    """Wait until every queued message is in the store."""
    while _writer is not None:
        await asyncio.shield(_writer)


def recall() -> list[dict[str, Any]]:
    return list(recent)
