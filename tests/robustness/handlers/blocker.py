"""A handler with a bug: on "block" it sleeps with ``time.sleep``, holding the event loop."""

from __future__ import annotations

import time
from typing import Any


def handler(ev: dict[str, Any], ctx: Any) -> None:  # a plain def, as a newcomer writes it
    message = ev["message"]
    if isinstance(message, str) and message.startswith("block "):
        time.sleep(float(message.split()[1]))
    ctx.emit("response", {"body": f"echo: {message}"})
