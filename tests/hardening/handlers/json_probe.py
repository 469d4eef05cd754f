"""Parses each text message as JSON and answers with the type it found.

A deeply nested document makes ``json.loads`` raise ``RecursionError``: the handler lets it
propagate, as a careless handler would, to show that the runtime logs it and serves on.
"""

from __future__ import annotations

import json
from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    message = ev["message"]
    if not isinstance(message, str):
        ctx.emit("response", {"body": {"parsed": "binary"}})
        return
    value = json.loads(message)
    ctx.emit("response", {"body": {"parsed": type(value).__name__}})
