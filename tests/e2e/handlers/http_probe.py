"""HTTP trigger probes: describe the request, or answer the way ``params.action`` says."""

from __future__ import annotations

import asyncio
from typing import Any

from lolo_runtime.errors import Reject


def describe(ev: dict[str, Any]) -> dict[str, Any]:
    body = ev["body"]
    return {
        "method": ev["method"],
        "path": ev["path"],
        "routePath": ev["routePath"],
        "params": ev["params"],
        "query": ev["query"],
        "headers": ev["headers"],
        "body": body if isinstance(body, dict | list | str | int | float | bool) else None,
        "bodyType": type(body).__name__,
        "rawBody": ev["rawBody"].decode("latin-1"),
        "rawBodyType": type(ev["rawBody"]).__name__,
        "sessionId": ev["sessionId"],
        "peer": ev["peer"],
        "scheme": ev["scheme"],
        "session": ev.get("session"),
    }


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "describe":
        ctx.log.info(f"describing {ev['method']} {ev['path']}")
        ctx.emit("response", {"body": describe(ev)})
    elif action == "describe-loudly":
        # A handler that logs whole requests: API keys in it must still not reach the log.
        ctx.log.debug("request:", ev)
        ctx.log.info(f"headers {ev['headers']} query {ev['query']}")
        ctx.emit("response", {"body": describe(ev)})
    elif action == "reply":
        await reply(ev, ctx)
    elif action == "ws-describe":
        ctx.emit("response", {"body": {"peer": ev["peer"], "path": ev["path"]}})
    elif action == "silent":
        ctx.log.info("staying silent")
    else:
        raise AssertionError(f"unknown action {action!r}")


async def reply(ev: dict[str, Any], ctx: Any) -> None:
    kind = ev["query"].get("kind")
    if kind == "dict":
        ctx.emit("response", {"body": {"a": 1, "é": [True, None]}})
    elif kind == "list":
        ctx.emit("response", {"body": [1, "two"]})
    elif kind == "str":
        ctx.emit("response", {"body": "plain text é"})
    elif kind == "bytes":
        ctx.emit("response", {"body": b"\x00\x01\xfe\xff"})
    elif kind == "custom":
        ctx.emit(
            "response",
            {
                "status": 202,
                "headers": {"x-probe": "yes", "content-type": "text/csv"},
                "body": "a,b\n",
            },
        )
    elif kind == "empty":
        ctx.emit("response", {"status": 204})
    elif kind == "bad-header":
        ctx.emit("response", {"headers": {"x-count": 3}, "body": "never sent"})
    elif kind == "raise":
        raise RuntimeError("secret-internal-detail-4711")
    elif kind == "reject":
        raise Reject(418, "I'm a teapot, says the probe")
    elif kind == "late":
        await asyncio.sleep(0.1)
        ctx.emit("response", {"body": "late but in time"})
    else:
        ctx.emit("response", {"status": 400, "body": {"error": f"unknown kind {kind!r}"}})
