"""GET /overview (flows/notes-api.yaml): lolo/barrier runs two lookups at once, ``stats``
and ``recent``; each says it is done with ``ctx.emit("<tag>_done", result)``, and the
barrier sends ``{"stats": ..., "recent": ...}`` on to ``answer``. If a lookup takes longer
than the barrier's timeout, ``answer`` gets what was done from the ``timeout`` port."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

CREATED = "notes-created/"


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    part = ctx.params["part"]
    if part == "stats":
        ctx.emit("stats_done", await stats(ctx))
    elif part == "recent":
        ctx.emit("recent_done", await recent(ctx, int(ctx.params.get("count", 3))))
    elif part == "answer":
        missing = [name for name in ("stats", "recent") if name not in ev]
        if missing:
            body = {"error": f"the {' and '.join(missing)} lookup took too long", **ev}
            ctx.emit("response", {"status": 503, "body": body})
        else:
            ctx.emit("response", {"body": {"stats": ev["stats"], "recent": ev["recent"]}})
    else:
        raise ValueError(f"unknown params.part {part!r}")


async def stats(ctx: Any) -> dict[str, Any]:
    """How many notes there are, and when the oldest was made."""
    times = [await ctx.state.get(key) for key in await ctx.state.keys(CREATED)]
    times = [t for t in times if isinstance(t, int | float)]
    oldest = min(times, default=None)
    return {
        "count": len(await note_ids(ctx)),
        "oldestCreatedAt": None if oldest is None else iso(oldest),
        "ageLimitSeconds": float(ctx.env["NOTES_MAX_AGE_SECONDS"]),
        "checkedAt": iso(time.time()),
    }


async def recent(ctx: Any, count: int) -> list[Any]:
    """The ``count`` newest notes, newest first."""
    notes = []
    for note_id in sorted(await note_ids(ctx), reverse=True)[:count]:
        note = await ctx.state.get(f"notes/{note_id}")
        if note is not None:
            notes.append(note)
    return notes


async def note_ids(ctx: Any) -> list[int]:
    """The ids of the notes lolo/crud-api keeps as ``notes/<id>``."""
    ids = []
    for key in await ctx.state.keys("notes/"):
        suffix = key[len("notes/") :]
        if suffix.isdigit():
            ids.append(int(suffix))
    return ids


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
