"""Stamp and Answer (flows/crud-api.yaml): answers a lolo/crud-api event with its suggested
response, plus a header saying which action ran, as a chain after a CRUD node would."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    response = dict(ev["response"])
    response["headers"] = {**response.get("headers", {}), "x-crud-action": ev["crud"]["action"]}
    ctx.emit("response", response)
