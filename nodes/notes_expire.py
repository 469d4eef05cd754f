"""Expire Old Notes (flows/notes-api.yaml): on each tick of the sweep timer, delete the
notes created more than ``NOTES_MAX_AGE_SECONDS`` ago (their creation times are kept by
notes_track.py). The timer fires each tick on one process only, even with --redis."""

from __future__ import annotations

import time
from typing import Any

CREATED = "notes-created/"


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    max_age = float(ctx.env["NOTES_MAX_AGE_SECONDS"])
    oldest_kept = time.time() - max_age
    expired = []
    for key in await ctx.state.keys(CREATED):
        created = await ctx.state.get(key)
        if isinstance(created, int | float) and created < oldest_kept:
            note_id = key[len(CREATED) :]
            await ctx.state.delete(f"notes/{note_id}")
            await ctx.state.delete(key)
            expired.append(note_id)
    if expired:
        ctx.log.info(f"expired {len(expired)} note(s) older than {max_age:g}s: {expired}")
