"""WebSocket probes of tests/e2e/flows/edge-ws.yaml; ``params.action`` picks the job.

``slow-req`` sleeps ``?ms=`` milliseconds (default 1000) in the ``req`` chain, then
passes the event on; ``refuse``
refuses the handshake with 401; ``method`` answers the handshake's ``ev["method"]``;
``closed`` logs each close event with its path and code (the line carries the session).
"""

from __future__ import annotations

import asyncio
from typing import Any

from lolo_runtime.errors import Reject


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "slow-req":
        ctx.log.info("slow req started")
        await asyncio.sleep(int(ev["query"].get("ms", "1000")) / 1000)
        ctx.log.info("slow req finished")
        ctx.route(ev)
    elif action == "refuse":
        ctx.log.info("refusing with 401")
        raise Reject(401, "no key, no entry")
    elif action == "method":
        ctx.emit("response", {"body": {"method": ev["method"]}})
    elif action == "closed":
        ctx.log.info(f"edge closed path={ev['path']} code={ev['code']}")
