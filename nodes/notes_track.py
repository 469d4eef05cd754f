"""Track Note Ages (flows/notes-api.yaml): after lolo/crud-api has done an action, remember
when each note was created, so that the sweep can expire old ones, then answer.

The time is kept beside the note, as ``notes-created/<id>``, not in it: the notes' schema
forbids fields a client did not send, and a PUT replaces the whole note.
"""

from __future__ import annotations

import time
from typing import Any

CREATED = "notes-created/"


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ev["crud"]["action"]
    if action == "create":
        await ctx.state.set(f"{CREATED}{ev['resource']['id']}", time.time())
    elif action == "delete":
        await ctx.state.delete(f"{CREATED}{ev['resource']['id']}")
    ctx.emit("response", ev["response"])
