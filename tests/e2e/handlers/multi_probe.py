"""Says which port a request came out of, and what the event held; logs each call, so that
the tests can tell that a refused request never reached a chain."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.log.info(f"chain ran: {ev['method']} {ev['path']}")
    body = ev["body"]
    ctx.emit(
        "response",
        {
            "body": {
                "port": ctx.params["port"],
                "method": ev["method"],
                "params": ev["params"],
                "routePath": ev["routePath"],
                "body": body if not isinstance(body, bytes) else body.decode("latin-1"),
                "session": ev.get("session"),
            }
        },
    )
