"""Takes the process's file descriptors on demand (tests/hardening/flows/descriptors.yaml).

``hog``: open /dev/null until the process may open no more, answer ``hogged <n>``;
``free``: close them all, answer ``freed <n>``.
"""

from __future__ import annotations

import os
from typing import Any

held: list[int] = []


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    if ev["message"] == "hog":
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        ctx.emit("response", {"body": f"hogged {len(held)}"})
    elif ev["message"] == "free":
        count = len(held)
        for fd in held:
            os.close(fd)
        held.clear()
        ctx.emit("response", {"body": f"freed {count}"})
