"""Tasks and answers for tests/e2e/flows/barrier.yaml, chosen by ``params.action``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

LOOKUP_SECONDS = 0.4
"""How long each lookup takes: run one after the other, two would take twice as long."""


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "user":
        await asyncio.sleep(LOOKUP_SECONDS if ev["query"].get("slow") == "user" else 0)
        ctx.emit("user_done", {"id": ev["params"]["id"], "name": f"user {ev['params']['id']}"})
    elif action == "orders":
        started = time.monotonic()
        await asyncio.sleep(LOOKUP_SECONDS)
        ctx.emit("orders_done", {"count": 2, "took": round(time.monotonic() - started, 3)})
    elif action == "stuck":
        ctx.log.info("stuck: never done")
    elif action == "broken":
        raise RuntimeError("the orders service is down")
    elif action == "respond":
        ctx.emit("response", {"body": {"gathered": ev}})
    elif action == "respond-partial":
        ctx.emit("response", {"status": 503, "body": {"partial": ev}})
