"""Expire Old Notes (flows/notes-api.yaml): on each tick of the sweep timer, delete the
notes created more than ``NOTES_MAX_AGE_SECONDS`` ago (their creation times are kept by
notes_track.py). The timer fires each tick on one process only, even with --redis.

"Now" is the tick's own time (``firedAt``), not ``time.time()``: a test that runs the flow
on lolo_runtime.testing's clock moves it by hand, a month in a moment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

CREATED = "notes-created/"


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    max_age = float(ctx.env["NOTES_MAX_AGE_SECONDS"])
    oldest_kept = datetime.fromisoformat(ev["firedAt"]).timestamp() - max_age
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
