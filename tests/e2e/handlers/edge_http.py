"""HTTP probes of tests/e2e/flows/edge-http.yaml; ``params.action`` picks the job.

``echo`` answers the request as JSON (method, path, body, params, query, headers) with
the status ``?status=`` (default 200; 204 and 304 without a body); ``slow`` sleeps
``?ms=`` milliseconds first, then echoes; ``boom`` raises; ``silent`` never answers.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "boom":
        raise RuntimeError("secret-edge-detail-4711")
    if action == "silent":
        return
    if action == "slow":
        await asyncio.sleep(int(ev["query"].get("ms", "300")) / 1000)
    body = ev["body"]
    if isinstance(body, bytes):
        body = {"base64": base64.b64encode(body).decode()}
    status = int(ev["query"].get("status", "200"))
    if status in (204, 304):
        ctx.emit("response", {"status": status, "headers": {"x-action": action}})
        return
    ctx.emit(
        "response",
        {
            "status": status,
            "headers": {"x-action": action},
            "body": {
                "method": ev["method"],
                "path": ev["path"],
                "body": body,
                "raw": ev["rawBody"].decode("latin-1"),
                "params": ev["params"],
                "query": ev["query"],
                "headers": ev["headers"],
            },
        },
    )
