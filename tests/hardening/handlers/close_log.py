"""Logs how each connection ended, so a test can read the close code from the server's log."""

from __future__ import annotations

from typing import Any


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    ctx.log.info(f"closed code={ev['code']} reason={ev['reason']!r}")
