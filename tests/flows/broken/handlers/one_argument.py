"""A handler that takes only the event, not ``(ev, ctx)``."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any]) -> None:
    print(ev)
