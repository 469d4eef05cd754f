"""Handler of the timer flows of tests/e2e/test_timer.py: logs each tick it is given (the
test reads the log), then, if its params say so, takes its time."""

from __future__ import annotations

import asyncio
from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.log.info(
        f"fired {ev['scheduledAt']} catchUp={ev['catchUp']} firedAt={ev['firedAt']} "
        f"node={ev['nodeId']} session={ev['sessionId']}"
    )
    await asyncio.sleep(float(ctx.params.get("pause", 0)))
