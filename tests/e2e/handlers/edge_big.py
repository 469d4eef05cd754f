"""The big-frame probe of tests/hardening/flows/big-frames.yaml.

On ``req``: remembers the client. On ``message``: ``big`` answers one 20 MB text message;
``burst <n>`` sends ``n`` messages of 256 KiB to every *other* client; anything else is
echoed. On ``close``: forgets the client and logs ``big closed code=<code>`` (the line
carries the session id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BIG = 20_000_000
SLICE = "y" * 256 * 1024

clients: dict[str, Callable[..., None]] = {}


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if "code" in ev:  # a close event
        clients.pop(ev["sessionId"], None)
        ctx.log.info(f"big closed code={ev['code']}")
    elif "message" not in ev:  # the req event
        clients[ev["sessionId"]] = ctx.emit
    elif ev["message"] == "big":
        ctx.emit("response", {"body": "x" * BIG})
    elif isinstance(ev["message"], str) and ev["message"].startswith("burst "):
        for session, emit in list(clients.items()):
            if session != ev["sessionId"]:
                for _ in range(int(ev["message"].split()[1])):
                    emit("response", {"body": SLICE})
    else:
        ctx.emit("response", {"body": ev["message"]})
