"""Which worker answered (``--workers`` tests): ``/pid`` answers the process id and its
``$LOLO_WORKER``; ``/print`` prints a line on stdout; ``/slow?s=N`` answers after N seconds.

``$WORKER_PROBE_FAIL`` breaks it in worker processes only (the supervisor loads the flow
too, and must not fail): ``import`` fails its import (a bad flow: status 2), ``setup`` its
setup (a run-time failure: status 1).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

IN_WORKER = os.environ.get("LOLO_WORKER") is not None
if IN_WORKER and os.environ.get("WORKER_PROBE_FAIL") == "import":
    raise RuntimeError("broken on purpose in workers")


async def setup(ctx: Any) -> None:
    if IN_WORKER and os.environ.get("WORKER_PROBE_FAIL") == "setup":
        raise RuntimeError("setup broken on purpose in workers")


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ev["params"]["action"]
    if action == "print":
        print(f"printed by worker {os.environ.get('LOLO_WORKER')}", flush=True)
    elif action == "slow":
        ctx.log.info("sleeping")
        await asyncio.sleep(float(ev["query"].get("s", "1")))
    ctx.emit("response", {"body": {"pid": os.getpid(), "worker": os.environ.get("LOLO_WORKER")}})
